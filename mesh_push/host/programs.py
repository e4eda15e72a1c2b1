"""The short programs mesh-push runs on hosts besides the host and down scripts: each rendered
from its own template in templates/programs/. Pure apart from reading the templates.

Each is sent as one command string (`ssh.run`), which the login shell, or `sudo sh -c`, runs:
newlines in it are fine. Every value in them goes through the `sh` filter (one shell word,
whatever it holds). They always come from the built-in templates: `--templates DIR` replaces
only what is rendered from the plan (templates/stp, evpn and scripts); these are the
controller's side of a conversation whose output it parses. docs/host-files.md lists the
files they keep on a host.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mesh_push.core.model import Mesh
from mesh_push.host import templates
from mesh_push.host.boot import Boot, SystemdBoot

if TYPE_CHECKING:
    import jinja2


# The host lock (templates/include/lock.sh.j2): how long a program waits for another mesh-push
# run on the same host to finish before it gives up, and the exit code it then gives up with.
LOCK_WAIT_S = 30
EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later
# Reading state takes milliseconds on a host; a read that has not answered in this long is
# stuck (seen on an overloaded 50-host lab), and a poll must not wait out the apply timeout.
READ_TIMEOUT_S = 30.0
# The apply command's exit code for a script that did not arrive whole (its digest differs).
EXIT_BAD_DIGEST = 65  # EX_DATAERR


@functools.cache
def _env() -> jinja2.Environment:
    return templates.load_templates()


def _render(template: str, mesh: Mesh, **values: Any) -> str:
    """Every program works on one mesh's things only: its state directory, key, boot unit
    (templates.host_paths), under that mesh's host lock."""
    return (
        _env()
        .get_template(template)
        .render(
            mesh_name=mesh.name,
            wg=mesh.wg_interface,
            bridge=mesh.bridge,
            lock_wait=LOCK_WAIT_S,
            lock_exit=EXIT_LOCKED,
            **templates.host_paths(mesh),
            **values,
        )
    )


def facts(mesh: Mesh, mode_gather: str, generate_key: bool, adopt_from: Sequence[str] = ()) -> str:
    """Facts and the observed state in one round trip: a host with nothing to change needs
    no other. With `generate_key` (keys: host) the host makes its private key if it has none
    (or takes over the one an older mesh-push made for this mesh's interface); the key never
    leaves it. `adopt_from` (up --adopt): the WireGuard interfaces of the plan, whose key a host
    without one keeps. `mode_gather`: the template of the mode's part of the state."""
    return _render(
        "programs/facts.sh.j2",
        mesh,
        generate_key=generate_key,
        mode_gather=mode_gather,
        adopt_from=adopt_from,
    )


def import_read(mesh: Mesh) -> str:
    """`mesh-push import`: what the host's network is, read only (host/found.py parses it)."""
    return _render("programs/import.sh.j2", mesh)


def gather(mesh: Mesh, mode_gather: str) -> str:
    """What host/state.py reads: sections of `wg show` (never a field that holds a private
    key), links, whether this mesh's boot unit is installed, then the mode's part."""
    return _render("programs/gather.sh.j2", mesh, mode_gather=mode_gather)


def boot_hook(mesh: Mesh, kind: type[Boot]) -> dict[str, Any]:
    """The boot hook of init `kind` (host/boot.py) as include/boot-install.sh.j2 installs it:
    its files with their text, and how it is enabled."""
    files = [
        {
            "path": f.path,
            "dir": f.path.rsplit("/", 1)[0],
            "chmod": f.chmod,
            "text": _render(f"boot/{f.template}", mesh, sv_dir=f.path.rsplit("/", 1)[0]),
        }
        for f in kind.files(mesh)
    ]
    return {"name": kind.name, "files": files, "enabled": kind.enabled(mesh),
            "enable": kind.enable(mesh)}  # fmt: skip


def apply(
    mesh: Mesh,
    digest: str,
    arm: str = "",
    boot: type[Boot] = SystemdBoot,
    install_key: bool = False,
    psks: Sequence[str] = (),
    adopt: bool = False,
) -> str:
    """Holding the host lock: store the script that comes on stdin as pending.sh, refuse it
    unless its SHA-256 is `digest` (EXIT_BAD_DIGEST: it did not arrive whole), stop an earlier
    rollback timer, run `arm` (a rollback timer, shell code from `arm`) if given, run the
    script detached from this SSH session so a dropped connection cannot stop it half way,
    wait, and hand back its log and exit code. On success the script becomes apply.sh (the
    boot script) with its digest recorded, and the boot unit is installed; a failed one is
    kept as failed.sh, and apply.sh stays the last good script. EXIT_LOCKED when another
    mesh-push run held the lock for LOCK_WAIT_S. With `install_key` (keys: controller) stdin
    starts with one line, the private key, written to the mesh's key file (0600) before the
    script is stored: the stored script never holds it. Then one line per peer in `psks`:
    the pre-shared key shared with that peer, written the same way to its file. `adopt`: the
    script runs as `up --adopt` (MESH_PUSH_ADOPT=1, include/adopt.sh.j2)."""
    return _render(
        "programs/apply.sh.j2",
        mesh,
        digest=digest,
        arm=arm,
        boot=boot_hook(mesh, boot),
        install_key=install_key,
        psks=[(peer, mesh.psk_file(peer)) for peer in psks],
        bad_digest_exit=EXIT_BAD_DIGEST,
        adopt="1" if adopt else "0",
    )


def armed(mesh: Mesh, token: str, seconds: float) -> str:
    """The timer of the rollout `token`, run on the host detached: it waits for the apply to
    end, gives the controller `seconds` to confirm, then, holding the host lock and only if
    no later run superseded it, unless confirmed, converges back to what the previous script
    described (the scripts are convergent, so running the old one *is* the rollback) and
    records that it happened."""
    return _render("programs/armed.sh.j2", mesh, token=token, seconds=f"{seconds:g}")


def arm(mesh: Mesh, token: str, seconds: float, fallback: str) -> str:
    """Shell run inside `apply`, holding the lock, before the new script runs: keep the last
    good script as the rollback (or `fallback`, the down script, on a host that had none),
    record `token` as the armed rollout, then start its timer."""
    return _render(
        "programs/arm.sh.j2",
        mesh,
        token=token,
        fallback_b64=base64.b64encode(fallback.encode()).decode(),
        armed_b64=base64.b64encode(armed(mesh, token, seconds).encode()).decode(),
    )


def confirm(mesh: Mesh, token: str) -> str:
    """Confirms the rollout `token`, holding the host lock; fails (saying why on stderr) if
    its timer already fired, a later run superseded it, or its apply has not ended well."""
    return _render("programs/confirm.sh.j2", mesh, token=token)


def rolled_back(mesh: Mesh, token: str) -> str:
    """What became of the rollout `token`'s timer: `rolled-back`, `superseded`, or nothing
    (still waiting, or confirmed)."""
    return _render("programs/rolled-back.sh.j2", mesh, token=token)


def psk_keys(mesh: Mesh, make: Sequence[str], read: Sequence[str]) -> str:
    """`keys: host`, on the first end of links: prints `PEER KEY` lines, a new pre-shared key
    (`wg genpsk`) for each peer in `make`, the one in its file for each in `read`. It writes
    nothing: the keys go, in the controller's memory only, to the apply of both ends."""
    return _render(
        "programs/psk-keys.sh.j2", mesh, make=make, read=[(p, mesh.psk_file(p)) for p in read]
    )


def rotate_key(mesh: Mesh) -> str:
    """Holding the host lock, a new private key beside the mesh's current one (the next
    apply moves it into place); prints its public key."""
    return _render("programs/rotate-key.sh.j2", mesh)


@dataclass(frozen=True)
class Handover:
    """A new peer key that takes over the addresses of the old one (handover_take)."""

    name: str
    iface: str
    key: str
    ips: str  # the allowed IPs, comma-separated, as `wg set` takes them
    first: str  # one of them as `wg show` prints it: its owner is the old peer
    endpoint: str | None
    keepalive: str
    psk_file: str | None
    address: str | None  # its tunnel address: one ping there makes the new session


def handover_switch(mesh: Mesh, ifaces: Sequence[str]) -> str:
    """On a round's rotating host: the next private key in place on `ifaces`."""
    return _render("programs/handover-switch.sh.j2", mesh, ifaces=ifaces)


def handover_take(mesh: Mesh, take: Sequence[Handover]) -> str:
    """On the peers of a round's rotating hosts, once they have switched: each new key takes
    over the old one's addresses, and a ping makes its session."""
    return _render("programs/handover-take.sh.j2", mesh, take=take)


def ping(peers: Sequence[tuple[str, str]]) -> str:
    """One ping to each (peer, address) across the bridge; prints the peers that did not
    answer."""
    return _env().get_template("programs/ping.sh.j2").render(peers=peers)


def measure(targets: Sequence[tuple[str, str]], count: int, mark: str) -> str:
    """All pings at once (each into its own file), then their outputs one after the other,
    each under a line `mark` + the peer's name."""
    return (
        _env()
        .get_template("programs/measure.sh.j2")
        .render(targets=targets, count=count, mark=mark)
    )


# The line after which the check program prints the script the host last applied.
APPLIED_MARKER = "=== mesh-push: the script this host last applied"


def check(
    mesh: Mesh,
    diff: bool,
    rotate: bool = False,
    down: bool = False,
    adopt: bool = False,
    boot: type[Boot] | None = None,
) -> str:
    """Runs the host (or with `down`, the down) script that comes on stdin in its read-only
    mode, not stored and without the host lock, and says whether the apply command would
    install the boot hook `boot` (host/boot.py; none for `down`); with `diff`, then prints
    APPLIED_MARKER and the script the host last applied. `rotate`: the host script takes a
    rotation as staged (rotate-keys); `adopt`: as `up --adopt --check`."""
    return _render(
        "programs/check.sh.j2",
        mesh,
        diff=diff,
        rotate="1" if rotate else "0",
        adopt="1" if adopt else "0",
        marker=APPLIED_MARKER,
        boot=None if down or boot is None else boot_hook(mesh, boot),
    )


def down(mesh: Mesh) -> str:
    """Holding the host lock, stops a running rollback timer, then runs the down script,
    which comes on stdin."""
    return _render("programs/down-stdin.sh.j2", mesh)
