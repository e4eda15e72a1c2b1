"""How a host brings the mesh back at boot: one small class per init system, chosen from the
init the host runs (its facts) or named by the inventory's `boot`. Each says which files it
installs (a systemd unit, a runit service, an OpenRC or an LSB init script: each re-runs the
mesh's stored script), how it enables them, how a shell tells that it is enabled, and how
`down` disables it. The host programs (templates/include/boot-*.sh.j2) do the same steps
with any of them; only the data differs. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from shlex import quote as q
from typing import ClassVar

from mesh_push.core.model import Mesh

# The inits a host can run, as the facts name them (templates/include/boot-init.sh.j2).
NONE = "none"
KINDS = ("systemd", "runit", "openrc", "sysvinit")
AUTO = "auto"  # the inventory's `boot` when it names none: the init the host runs
SETTINGS = (AUTO, *KINDS)


@dataclass(frozen=True)
class Seen:
    """The gather's boot section (templates/programs/gather.sh.j2): the init the host runs,
    the inits whose hook of this mesh is there and enabled, and whether the script they run
    (the last applied) is there."""

    init: str = NONE
    hooks: tuple[str, ...] = ()
    script: bool = False


def parse(section: str) -> Seen:
    kv: dict[str, list[str]] = {}
    for line in section.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            kv.setdefault(k.strip(), []).append(v.strip())
    init = (kv.get("init") or [NONE])[0]
    return Seen(
        init=init if init in KINDS else NONE,
        hooks=tuple(h for h in KINDS if h in kv.get("hook", [])),
        script=kv.get("script") == ["yes"],
    )


@dataclass(frozen=True)
class File:
    path: str
    template: str  # under templates/boot/
    chmod: str  # its permissions, octal


class Boot:
    """One init system's way to run the mesh's script at boot, after the network is up. Every
    path it writes is under ROOT ("" for the host's own /; another root is a tree being
    prepared, as the unit tests' temporary directories); links point at the paths as the
    host sees them."""

    name: ClassVar[str]
    ROOT: ClassVar[str] = ""

    @classmethod
    def files(cls, mesh: Mesh) -> tuple[File, ...]:
        raise NotImplementedError

    @classmethod
    def enabled(cls, mesh: Mesh) -> str:
        """A shell command that succeeds when the files are enabled at boot."""
        raise NotImplementedError

    @classmethod
    def enable(cls, mesh: Mesh) -> str:
        """Shell that enables the files (again, after they changed). Works where the init is
        installed but not running too (an image, a chroot, the namespace lab)."""
        raise NotImplementedError

    @classmethod
    def disable(cls, mesh: Mesh) -> str:
        """Shell that undoes `enable`, whether or not it was done; `removed` go after it."""
        raise NotImplementedError

    @classmethod
    def removed(cls, mesh: Mesh) -> tuple[str, ...]:
        """What `down` removes after `disable`: the files (a runit service: its directory,
        with the supervise state runsv keeps in it)."""
        return tuple(f.path for f in cls.files(mesh))


class SystemdBoot(Boot):
    name = "systemd"

    @classmethod
    def files(cls, mesh: Mesh) -> tuple[File, ...]:
        return (File(cls.ROOT + mesh.boot_unit, "systemd.service.j2", "644"),)

    @classmethod
    def enabled(cls, mesh: Mesh) -> str:
        return f'[ "$(readlink {q(cls.ROOT + mesh.boot_wants)})" = {q(mesh.boot_unit)} ]'

    @classmethod
    def enable(cls, mesh: Mesh) -> str:
        # The wants link is what a boot runs; a running systemd is told now as well.
        wants = cls.ROOT + mesh.boot_wants
        return (
            f"mkdir -p {q(wants.rsplit('/', 1)[0])} && ln -sf {q(mesh.boot_unit)} {q(wants)} && "
            "{ [ ! -d /run/systemd/system ] || systemctl daemon-reload; }"
        )

    @classmethod
    def disable(cls, mesh: Mesh) -> str:
        unit = mesh.boot_unit.rsplit("/", 1)[1]
        return (
            "{ [ ! -d /run/systemd/system ] || "
            f"systemctl disable -q {q(unit)} 2>/dev/null || true; }}; "
            f"rm -f {q(cls.ROOT + mesh.boot_wants)}"
        )


class RunitBoot(Boot):
    """A service in /etc/sv linked into the default runsvdir (Void's /var/service and Debian's
    /etc/service both lead there). runsv starts it at boot, and at once when it is linked:
    its run script takes the host lock, so that first run waits for the apply and changes
    nothing. `sv once` keeps runsv from starting it again when it exits."""

    name = "runit"

    @classmethod
    def _sv(cls, mesh: Mesh) -> str:
        return f"/etc/sv/{mesh.boot_name}"

    @classmethod
    def _link(cls, mesh: Mesh) -> str:
        return f"{cls.ROOT}/etc/runit/runsvdir/default/{mesh.boot_name}"

    @classmethod
    def files(cls, mesh: Mesh) -> tuple[File, ...]:
        return (File(f"{cls.ROOT}{cls._sv(mesh)}/run", "runit-run.j2", "755"),)

    @classmethod
    def removed(cls, mesh: Mesh) -> tuple[str, ...]:
        return (cls.ROOT + cls._sv(mesh),)

    @classmethod
    def enabled(cls, mesh: Mesh) -> str:
        return f'[ "$(readlink {q(cls._link(mesh))})" = {q(cls._sv(mesh))} ]'

    @classmethod
    def enable(cls, mesh: Mesh) -> str:
        link = cls._link(mesh)
        return f"mkdir -p {q(link.rsplit('/', 1)[0])} && ln -sfn {q(cls._sv(mesh))} {q(link)}"

    @classmethod
    def disable(cls, mesh: Mesh) -> str:
        # Unlinked, runsvdir stops its runsv within 5 s; `sv exit` does it now.
        return (
            f"rm -f {q(cls._link(mesh))}; "
            f"{{ sv exit {q(cls.ROOT + cls._sv(mesh))} >/dev/null 2>&1 || true; }}"
        )


class OpenrcBoot(Boot):
    """An openrc-run script in the default runlevel (what `rc-update add` makes)."""

    name = "openrc"

    @classmethod
    def _link(cls, mesh: Mesh) -> str:
        return f"{cls.ROOT}/etc/runlevels/default/{mesh.boot_name}"

    @classmethod
    def _script(cls, mesh: Mesh) -> str:
        return f"/etc/init.d/{mesh.boot_name}"

    @classmethod
    def files(cls, mesh: Mesh) -> tuple[File, ...]:
        return (File(f"{cls.ROOT}/etc/init.d/{mesh.boot_name}", "openrc.j2", "755"),)

    @classmethod
    def enabled(cls, mesh: Mesh) -> str:
        return f'[ "$(readlink {q(cls._link(mesh))})" = {q(cls._script(mesh))} ]'

    @classmethod
    def enable(cls, mesh: Mesh) -> str:
        link = cls._link(mesh)
        return f"mkdir -p {q(link.rsplit('/', 1)[0])} && ln -sf {q(cls._script(mesh))} {q(link)}"

    @classmethod
    def disable(cls, mesh: Mesh) -> str:
        return f"rm -f {q(cls._link(mesh))}"


class SysvinitBoot(Boot):
    """An LSB init script in runlevels 2 to 5: update-rc.d orders it after $network where it
    exists (Debian, Devuan), else S99 links."""

    name = "sysvinit"

    @classmethod
    def files(cls, mesh: Mesh) -> tuple[File, ...]:
        return (File(f"{cls.ROOT}/etc/init.d/{mesh.boot_name}", "sysvinit.j2", "755"),)

    @classmethod
    def enabled(cls, mesh: Mesh) -> str:
        rc2, pattern = q(f"{cls.ROOT}/etc/rc2.d"), q(f"S??{mesh.boot_name}")
        return f'[ -n "$(find {rc2} -name {pattern} 2>/dev/null)" ]'

    @classmethod
    def enable(cls, mesh: Mesh) -> str:
        n, r = q(mesh.boot_name), q(cls.ROOT)
        links = (
            f"for l in 2 3 4 5; do mkdir -p {r}/etc/rc$l.d && "
            f"ln -sf ../init.d/{n} {r}/etc/rc$l.d/S99{n}; done"
        )
        if cls.ROOT:  # another root's update-rc.d is not this one's
            return links
        return (
            "if command -v update-rc.d >/dev/null; then "
            f"update-rc.d {n} defaults >/dev/null; else {links}; fi"
        )

    @classmethod
    def disable(cls, mesh: Mesh) -> str:
        n, r = q(mesh.boot_name), q(cls.ROOT)
        links = f"rm -f {r}/etc/rc[0-6S].d/[SK][0-9][0-9]{n}"
        if cls.ROOT:
            return links
        return (
            "{ ! command -v update-rc.d >/dev/null || "
            f"update-rc.d -f {n} remove >/dev/null 2>&1 || true; }}; {links}"
        )


BOOTS: tuple[type[Boot], ...] = (SystemdBoot, RunitBoot, OpenrcBoot, SysvinitBoot)
BY_NAME = {b.name: b for b in BOOTS}


def rooted(root: str) -> tuple[type[Boot], ...]:
    """Every init's hook, writing under `root` instead of /."""
    return tuple(type(b.__name__, (b,), {"ROOT": root}) for b in BOOTS)


def choose(setting: str, init: str) -> type[Boot] | None:
    """The inventory's `boot` when it names one, else the host's own init; None: it runs
    none that mesh-push knows."""
    return BY_NAME.get(init if setting == AUTO else setting)


def missing(init: str) -> str:
    """Why a host whose `boot` is auto gets no boot backend: the facts step's failure."""
    seen = "no init system" if init == NONE else f"init {init!r}"
    return (
        f"{seen} that mesh-push can hand the mesh to at boot (it knows systemd, runit, OpenRC "
        "and sysvinit): the mesh would be gone after a reboot. Set the host's `boot:` to the "
        "one that runs there (docs/hosts.md#boot)"
    )
