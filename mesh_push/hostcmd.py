"""The short programs mesh-push runs on hosts besides the host and down scripts: each rendered
from its own template in templates/. Pure apart from reading the templates.

Each is sent as one command string (`ssh.run`), which the login shell, or `sudo sh -c`, runs:
newlines in it are fine. Every value in them goes through the `sh` filter (one shell word,
whatever it holds). They always come from the built-in templates: `--templates DIR` replaces
only what is rendered from the plan (host.sh.j2, reresolve.sh.j2, down.sh.j2); these are the
controller's side of a conversation whose output it parses. docs/host-files.md lists the
files they keep on a host.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import render
from .model import BOOT_UNIT, BOOT_WANTS, STATE_DIR, Mesh

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _env() -> jinja2.Environment:
    return render.load_templates()


def _render(template: str, **values: Any) -> str:
    return _env().get_template(template).render(state_dir=STATE_DIR, **values)


def facts(mesh: Mesh, generate_key: bool) -> str:
    """Facts and the observed state in one round trip: a host with nothing to change needs
    no other. With `generate_key` (keys: host) the host makes its private key if it has none;
    the key never leaves it."""
    return _render(
        "facts.sh.j2",
        key_file=mesh.key_file,
        generate_key=generate_key,
        wg=mesh.wg_interface,
        bridge=mesh.bridge,
        unit=BOOT_UNIT,
        wants=BOOT_WANTS,
    )


def gather(wg: str, bridge: str) -> str:
    """What `observe.parse` reads: sections of `wg show` (never a field that holds a private
    key), STP and links."""
    return _render("gather.sh.j2", wg=wg, bridge=bridge, unit=BOOT_UNIT, wants=BOOT_WANTS)


def boot_unit() -> str:
    """The systemd unit that re-runs the last applied script at boot."""
    return _render("boot-unit.service.j2")


def apply(digest: str, arm: str = "", reload: str = "", key_file: str | None = None) -> str:
    """Store the script that comes on stdin (temp file, rename), run it detached from this SSH
    session so a dropped connection cannot stop it half way, wait, and hand back its log and
    exit code. On success: its digest, and the boot unit. `arm` (a rollback timer, shell code
    from `arm`) runs first, while the old script is still in place. With `key_file` (keys:
    controller) stdin starts with one line, the private key, written to `key_file` (0600)
    before the script is stored: the stored script never holds it."""
    return _render(
        "apply.sh.j2",
        digest=digest,
        arm=arm,
        unit=BOOT_UNIT,
        wants=BOOT_WANTS,
        unit_text=boot_unit(),
        reload=reload,
        key_file=key_file,
    )


def armed(token: str, seconds: float) -> str:
    """The timer, run on the host detached: unless confirmed in time, converge back to what
    the previous script described (the scripts are convergent, so running the old one *is*
    the rollback) and record that it happened."""
    return _render("armed.sh.j2", token=token, seconds=f"{seconds:g}")


def arm(token: str, seconds: float, fallback: str) -> str:
    """Shell run before the new script replaces the old: keep the old script as the rollback
    (or `fallback`, the down script, on a host that had none), then start the timer."""
    return _render(
        "arm.sh.j2",
        fallback_b64=base64.b64encode(fallback.encode()).decode(),
        armed_b64=base64.b64encode(armed(token, seconds).encode()).decode(),
    )


def confirm(token: str) -> str:
    """Fails if the timer already fired: the host is back in its old state."""
    return _render("confirm.sh.j2", token=token)


def rolled_back() -> str:
    """The token of the rollback that happened, or nothing."""
    return _render("rolled-back.sh.j2")


def rotate_key(key_file: str) -> str:
    """A new private key beside the current one (the next apply moves it into place); prints
    its public key."""
    return _render("rotate-key.sh.j2", key_file=key_file)


def ping(peers: Sequence[tuple[str, str]]) -> str:
    """One ping to each (peer, address) across the bridge; prints the peers that did not
    answer."""
    return _render("ping.sh.j2", peers=peers)


def measure(targets: Sequence[tuple[str, str]], count: int, mark: str) -> str:
    """All pings at once (each into its own file), then their outputs one after the other,
    each under a line `mark` + the peer's name."""
    return _render("measure.sh.j2", targets=targets, count=count, mark=mark)


def down() -> str:
    """Runs the down script, which comes on stdin."""
    return _render("down-stdin.sh.j2")
