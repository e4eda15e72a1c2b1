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

from mesh_push.core.model import UNIT_DIR, WANTS_DIR, Mesh

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


class LinkedBoot(Boot):
    """Enabled by one symbolic link, at `link` (under ROOT), to `target` (as the host sees
    it): what `systemctl enable`, `rc-update add` and Void's `ln -s /etc/sv/X /var/service`
    make. `after_link`: what the init is told besides, if anything."""

    # Paths as the host sees them, `{name}` the mesh's boot name (Mesh.boot_name).
    LINK: ClassVar[str]
    TARGET: ClassVar[str]
    after_link: ClassVar[str] = ""

    @classmethod
    def link(cls, mesh: Mesh) -> str:
        return cls.LINK.format(name=mesh.boot_name)

    @classmethod
    def target(cls, mesh: Mesh) -> str:
        return cls.TARGET.format(name=mesh.boot_name)

    @classmethod
    def enabled(cls, mesh: Mesh) -> str:
        return f'[ "$(readlink {q(cls.ROOT + cls.link(mesh))})" = {q(cls.target(mesh))} ]'

    @classmethod
    def enable(cls, mesh: Mesh) -> str:
        link = cls.ROOT + cls.link(mesh)
        made = f"mkdir -p {q(link.rsplit('/', 1)[0])} && ln -sfn {q(cls.target(mesh))} {q(link)}"
        return f"{made} && {{ {cls.after_link}; }}" if cls.after_link else made

    @classmethod
    def disable(cls, mesh: Mesh) -> str:
        return f"rm -f {q(cls.ROOT + cls.link(mesh))}"


class SystemdBoot(LinkedBoot):
    """The unit, wanted by multi-user.target. The link is what a boot runs; a running systemd
    is told now as well."""

    name = "systemd"
    LINK = WANTS_DIR + "/{name}.service"
    TARGET = UNIT_DIR + "/{name}.service"
    after_link = "[ ! -d /run/systemd/system ] || systemctl daemon-reload"

    @classmethod
    def files(cls, mesh: Mesh) -> tuple[File, ...]:
        return (File(cls.ROOT + cls.target(mesh), "systemd.service.j2", "644"),)

    @classmethod
    def disable(cls, mesh: Mesh) -> str:
        unit = q(cls.target(mesh).rsplit("/", 1)[1])
        told = f"[ ! -d /run/systemd/system ] || systemctl disable -q {unit} 2>/dev/null || true"
        return f"{{ {told}; }}; {super().disable(mesh)}"


class RunitBoot(LinkedBoot):
    """A service in /etc/sv linked into the default runsvdir (Void's /var/service and Debian's
    /etc/service both lead there). runsv starts it at boot, and at once when it is linked:
    its run script takes the host lock, so that first run waits for the apply and changes
    nothing. `sv once` keeps runsv from starting it again when it exits."""

    name = "runit"
    LINK = "/etc/runit/runsvdir/default/{name}"
    TARGET = "/etc/sv/{name}"

    @classmethod
    def files(cls, mesh: Mesh) -> tuple[File, ...]:
        return (File(f"{cls.ROOT}{cls.target(mesh)}/run", "runit-run.j2", "755"),)

    @classmethod
    def removed(cls, mesh: Mesh) -> tuple[str, ...]:
        return (cls.ROOT + cls.target(mesh),)

    @classmethod
    def disable(cls, mesh: Mesh) -> str:
        # Unlinked, runsvdir stops its runsv within 5 s; `sv exit` does it now.
        sv = q(cls.ROOT + cls.target(mesh))
        return f"{super().disable(mesh)}; {{ sv exit {sv} >/dev/null 2>&1 || true; }}"


class OpenrcBoot(LinkedBoot):
    """An openrc-run script in the default runlevel (what `rc-update add` makes)."""

    name = "openrc"
    LINK = "/etc/runlevels/default/{name}"
    TARGET = "/etc/init.d/{name}"

    @classmethod
    def files(cls, mesh: Mesh) -> tuple[File, ...]:
        return (File(cls.ROOT + cls.target(mesh), "openrc.j2", "755"),)


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
