"""FRR's files are written safely (issue 28): /etc/frr belongs to FRR's user, who could plant
a symbolic link below it. The evpn host script's own writer (frr_put, cut from a rendered
script) runs as root against a stand-in for /etc/frr/PATHSPACE where such links are planted:
the file a link names is never written or chowned, the directory becomes root:frr 0750, and a
directory that is itself a link is refused."""

from __future__ import annotations

import grp
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.kit import GOLDEN


def writer(etc: Path) -> str:
    """frr_in_etc and frr_put as the golden evpn script has them, for `etc`."""
    text = (GOLDEN / "evpn" / "rho.sh").read_text()
    start = text.index("frr_in_etc() {")
    end = text.index("frr_write() {")
    return f"set -eu\nETC={etc}\n{text[start:end]}"


def put(etc: Path, name: str, content: str) -> subprocess.CompletedProcess[str]:
    script = writer(etc) + f'frr_put {name} "$CONTENT"\n'
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env={**os.environ, "CONTENT": content}
    )


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    d = tmp_path / "lab-mesh"
    d.mkdir(mode=0o770)
    return d


def test_links_planted_in_the_directory_are_replaced_never_followed(
    etc: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root's own\n")
    os.chmod(secret, 0o600)
    (etc / "frr.conf").symlink_to(secret)  # what FRR's user could leave
    (etc / "frr.conf.new").symlink_to(secret)  # the name the old writer used
    res = put(etc, "frr.conf", "router ospf\n")
    assert res.returncode == 0, res.stderr
    assert secret.read_text() == "root's own\n"
    st = secret.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o600)
    conf = etc / "frr.conf"
    assert not conf.is_symlink() and conf.read_text() == "router ospf\n"
    assert (conf.stat().st_uid, conf.stat().st_mode & 0o777) == (0, 0o640)
    assert conf.stat().st_gid == grp.getgrnam("frr").gr_gid
    d = etc.stat()
    assert (d.st_uid, d.st_mode & 0o777) == (0, 0o750)
    assert not [p for p in etc.iterdir() if re.match(r"\.frr\.conf\.", p.name)]


def test_a_directory_that_is_a_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    etc = tmp_path / "lab-mesh"
    etc.symlink_to(elsewhere)
    res = put(etc, "frr.conf", "router ospf\n")
    assert res.returncode == 1
    assert "is not a directory of its own" in res.stderr
    assert list(elsewhere.iterdir()) == []
