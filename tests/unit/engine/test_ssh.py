"""How a host is reached (address, user, keys, sudo) and how commands become root: pure parts,
run under `sh` where the shell itself is what is tested. The real sshd and sudo are in
tests/e2e/test_first_contact.py and tests/e2e/test_sudo.py."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import paramiko
import pytest

from mesh_push import inventory
from mesh_push.core.model import Mesh
from mesh_push.core.problems import InventoryError
from mesh_push.engine import ssh
from mesh_push.files import become

INVENTORY = """
hosts:
  bob: {endpoint: static, address: 198.51.100.1}
  rho: {endpoint: static, address: 198.51.100.2, ssh: {address: 203.0.113.9, user: admin}}
  pi0: {endpoint: nat, ssh: {via: rho, become: none, user: pi}}
  vorke: {endpoint: dynamic}
links: full
"""


def mesh(tmp_path: Path, extra: str = "") -> Mesh:
    path = tmp_path / "mesh.yaml"
    path.write_text(extra + INVENTORY)
    return inventory.load(path)


def config(text: str) -> paramiko.SSHConfig:
    return paramiko.SSHConfig.from_text(text)


def test_address_order_without_ssh_config(tmp_path: Path) -> None:
    m = mesh(tmp_path)
    empty = config("")
    # No ssh.address, no HostName: the endpoint address, never the bare name through DNS.
    assert ssh.resolve(m, m.host("bob"), empty).hostname == "198.51.100.1"
    assert ssh.resolve(m, m.host("rho"), empty).hostname == "203.0.113.9"
    # Nothing at all to go on: the name itself.
    assert ssh.resolve(m, m.host("vorke"), empty).hostname == "vorke"


def test_address_order_with_ssh_config(tmp_path: Path) -> None:
    m = mesh(tmp_path)
    cfg = config("Host bob rho vorke\n  HostName 192.0.2.7\n  User ops\n  Port 2222\n")
    bob = ssh.resolve(m, m.host("bob"), cfg)
    assert (bob.hostname, bob.user, bob.port) == ("192.0.2.7", "ops", 2222)
    # The inventory's own ssh settings win over ssh_config.
    rho = ssh.resolve(m, m.host("rho"), cfg)
    assert (rho.hostname, rho.user) == ("203.0.113.9", "admin")
    # paramiko cannot tell `HostName %h` from no HostName: the endpoint address then wins.
    cfg = config("Host bob\n  HostName %h\n")
    assert ssh.resolve(m, m.host("bob"), cfg).hostname == "198.51.100.1"


def test_become_defaults_to_sudo_unless_root(tmp_path: Path) -> None:
    m = mesh(tmp_path)
    empty = config("")
    assert not ssh.resolve(m, m.host("bob"), empty).sudo  # root, the mesh default
    assert ssh.resolve(m, m.host("rho"), empty).sudo  # admin
    assert not ssh.resolve(m, m.host("pi0"), empty).sudo  # become: none wins
    m2 = mesh(tmp_path, "ssh: {user: debian}\n")
    assert all(ssh.resolve(m2, h, empty).sudo for h in m2.hosts if h.name != "pi0")
    m3 = mesh(tmp_path, "ssh: {become: sudo}\n")
    assert ssh.resolve(m3, m3.host("bob"), empty).sudo  # root through sudo, if asked


def test_bad_become_is_an_inventory_problem(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as e:
        mesh(tmp_path, "ssh: {become: su}\n")
    assert "ssh.become: must be one of sudo, none, not 'su'" in str(e.value.problems[0])


def test_default_identities_are_openssh_s_when_none_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (tmp_path / ".ssh").mkdir()
    for name in ("id_ed25519", "id_rsa", "id_dsa"):
        (tmp_path / ".ssh" / name).write_text("x")
    m = mesh(tmp_path)
    target = ssh.resolve(m, m.host("bob"), config(""))
    kw = ssh._auth_kwargs(target)
    # OpenSSH's order, only the kinds paramiko reads; the agent is on; no key_filename=None.
    assert kw["key_filename"] == [str(tmp_path / ".ssh" / n) for n in ("id_rsa", "id_ed25519")]
    assert kw["allow_agent"] is True and kw["look_for_keys"] is False


def test_no_key_anywhere_leaves_key_filename_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    m = mesh(tmp_path)
    kw = ssh._auth_kwargs(ssh.resolve(m, m.host("bob"), config("")))
    assert "key_filename" not in kw and kw["allow_agent"] is True


def test_named_identities_keep_the_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    m = mesh(tmp_path)
    cfg = config("Host bob\n  IdentityFile ~/keys/a\n")
    kw = ssh._auth_kwargs(ssh.resolve(m, m.host("bob"), cfg))
    assert kw["key_filename"] == [str(tmp_path / "keys/a")] and kw["allow_agent"] is True
    only = config("Host bob\n  IdentityFile ~/keys/a\n  IdentitiesOnly yes\n")
    assert ssh._auth_kwargs(ssh.resolve(m, m.host("bob"), only))["allow_agent"] is False


# --------------------------------------------------------------------------- as root


def fake_sudo(tmp_path: Path, needs_password: str | None) -> dict[str, str]:
    """A `sudo` on PATH that behaves like the real one for -n, -S and -p, records its argv and
    runs the command as the current user."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / "sudo"
    script.write_text(
        f"""#!/bin/sh
printf '%s\\n' "$*" >> {shlex.quote(str(tmp_path / "argv"))}
nonint=0; stdin_pw=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) nonint=1; shift ;;
    -S) stdin_pw=1; shift ;;
    -p) shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
want={shlex.quote(needs_password or "")}
if [ -n "$want" ]; then
  if [ "$nonint" = 1 ]; then echo "sudo: a password is required" >&2; exit 1; fi
  IFS= read -r got || got=
  if [ "$got" != "$want" ]; then
    echo "Sorry, try again." >&2; echo "sudo: 1 incorrect password attempt" >&2; exit 1
  fi
fi
exec "$@"
"""
    )
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def run_as_root(
    tmp_path: Path, command: str, stdin: str, needs: str | None, given: str | None
) -> subprocess.CompletedProcess[str]:
    target = ssh.Target("h", "h", 22, "debian", (), None, sudo=True)
    line, preamble = ssh.as_root(command, target, given)
    return subprocess.run(
        ["sh", "-c", line],
        input=preamble + stdin,
        capture_output=True,
        text=True,
        env=fake_sudo(tmp_path, needs),
        timeout=10,
    )


@pytest.mark.parametrize(("needs", "given"), [(None, None), (None, "pw"), ("pw", "pw")], ids=str)
def test_the_command_gets_exactly_its_own_stdin(
    tmp_path: Path, needs: str | None, given: str | None
) -> None:
    res = run_as_root(tmp_path, 'cat; echo "$0 done"', "line 1\nline 2\n", needs, given)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "line 1\nline 2\nsh done\n"  # never the password
    assert "pw" not in (tmp_path / "argv").read_text()  # never on sudo's command line


def test_sudo_errors_are_named(tmp_path: Path) -> None:
    target = ssh.Target("h", "h", 22, "debian", (), None, sudo=True)
    res = run_as_root(tmp_path, "true", "", "pw", None)
    result = ssh.Result("true", res.returncode, res.stdout, res.stderr, 0.0)
    assert "wants a password" in (ssh.become_problem(result, target, None) or "")
    res = run_as_root(tmp_path, "true", "", "pw", "nope")
    result = ssh.Result("true", res.returncode, res.stdout, res.stderr, 0.0)
    assert "refused the password" in (ssh.become_problem(result, target, "nope") or "")
    refused = ssh.Result("true", 1, "", "debian is not in the sudoers file.\n", 0.0)
    assert "may not use sudo" in (ssh.become_problem(refused, target, None) or "")
    missing = ssh.Result("true", 127, "", "sh: 1: sudo: not found\n", 0.0)
    assert "sudo is not installed" in (ssh.become_problem(missing, target, None) or "")
    # A command's own failure is not sudo's.
    failed = ssh.Result("false", 3, "", "ip: RTNETLINK answers: File exists\n", 0.0)
    assert ssh.become_problem(failed, target, None) is None


def test_root_login_runs_the_command_as_it_is() -> None:
    target = ssh.Target("h", "h", 22, "root", (), None)
    assert ssh.as_root("ip link", target, "pw") == ("ip link", "")


# --------------------------------------------------------------------------- the password


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(become.PASSWORD_FILE_ENV, raising=False)
    monkeypatch.delenv(become.PASSWORD_ENV, raising=False)
    assert become.password(False) is None
    monkeypatch.setenv(become.PASSWORD_ENV, "from env")
    assert become.password(False) == "from env"
    pw = tmp_path / "pw"
    pw.write_text("from file\n")
    monkeypatch.setenv(become.PASSWORD_FILE_ENV, str(pw))
    assert become.password(False) == "from file"  # the file wins over the variable
    pw.write_text("two\nlines\n")
    with pytest.raises(become.BecomePasswordError, match="more than one line"):
        become.password(False)
    monkeypatch.setenv(become.PASSWORD_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(become.BecomePasswordError, match="No such file"):
        become.password(False)
