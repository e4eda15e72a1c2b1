"""The lab's FRR plumbing, pure parts: which directories a host gets, and the accounts FRR
needs in a login host's private /etc files. No root needed, no lab started."""

from __future__ import annotations

import os
from pathlib import Path

from mesh_push.lab import netns, users

MACHINE_PASSWD = """root:x:0:0:root:/root:/bin/bash
frr:x:103:107:Frr routing suite,,,:/nonexistent:/usr/sbin/nologin
debian:x:1000:1000::/home/debian:/bin/sh
"""
MACHINE_GROUP = """root:x:0:
frrvty:x:106:frr
frr:x:107:
"""


def test_login_hosts_keep_the_machines_frr_accounts() -> None:
    pw = users.passwd(MACHINE_PASSWD, 1001)
    gr = users.group(MACHINE_GROUP, 1001)
    assert "frr:x:103:107:Frr routing suite,,,:/nonexistent:/usr/sbin/nologin" in pw.splitlines()
    assert {"frrvty:x:106:frr", "frr:x:107:"} <= set(gr.splitlines())
    # The machine's own `debian` gives way to the lab's, once.
    assert [ln for ln in pw.splitlines() if ln.startswith("debian:")] == [
        "debian:x:1001:1001:lab sudo user:/home/debian:/bin/sh"
    ]
    assert "frr:*:" in users.shadow(pw, None)


def test_frr_dirs_only_with_frr(tmp_path: Path) -> None:
    ids = (os.getuid(), os.getgid())  # chown to oneself works without root
    netns.make_frr_dirs(tmp_path, ids)
    for sub in netns.FRR_PRIVATE_DIRS.values():
        st = (tmp_path / sub).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (*ids, 0o755)
    assert (tmp_path / netns.FRR_IDS_FILE).read_text() == f"{ids[0]} {ids[1]}\n"
    # FRR gone from the machine (or never there): the keeper mounts nothing of it.
    netns.make_frr_dirs(tmp_path, None)
    assert not (tmp_path / netns.FRR_IDS_FILE).exists()


def test_keeper_mounts_frr_dirs_only_when_told() -> None:
    script = netns.KEEPER_SCRIPT
    guard = script.index('if [ -e "$2/frr-ids" ]; then')
    assert netns.FRR_IDS_FILE == "frr-ids"
    for target in (netns.FRR_TMPFS_DIR, *netns.FRR_PRIVATE_DIRS):
        assert script.index(f" {target}\n") > guard
    for target, sub in netns.FRR_PRIVATE_DIRS.items():
        assert f'mount --bind "$2/{sub}" {target}\n' in script
    # On /run, not /var/run: /var/run is a symlink to /run on Debian.
    assert netns.FRR_TMPFS_DIR == "/run/frr"
