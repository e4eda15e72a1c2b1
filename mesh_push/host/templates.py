"""The templates of everything mesh-push runs on hosts (templates/: per-mode host scripts in
stp/ and evpn/, scripts rendered from the plan in scripts/, host programs in programs/, shared
pieces in include/), and the filters every value goes through. Pure apart from reading them."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import jinja2

from mesh_push.core import model
from mesh_push.core.model import Mesh
from mesh_push.core.problems import UsageError
from mesh_push.host import boot


def builtin_templates() -> Path:
    package = Path(__file__).parents[1]
    installed = package / "templates"
    # In a source checkout (editable install) the templates sit beside the package.
    return installed if installed.is_dir() else package.parent / "templates"


def load_templates(directory: Path | None = None) -> jinja2.Environment:
    """With `directory` (`--templates DIR`), a template found there, under the same path as in
    templates/, is used instead of the built-in one."""
    # Imported here: `--help` never renders, and should not pay for Jinja.
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    paths = [str(builtin_templates())]
    if directory is not None:
        paths.insert(0, str(directory))

    class Templates(ImmutableSandboxedEnvironment):
        """Sandboxed: a template from `--templates DIR` (a shared repository, say) runs its
        shell on the hosts, where it is meant to, but reaches nothing of the controller's
        Python (no `__class__.__mro__`, no mutation of the plan); 0.3 ms a host script. A
        template's mistake is a TemplateProblem naming its file and line."""

        def handle_exception(self, source: str | None = None) -> NoReturn:
            try:
                super().handle_exception(source)
            except jinja2.TemplateError as e:
                raise TemplateProblem(f"{_where(e)}{e.message or e}") from None

    env = Templates(
        loader=jinja2.FileSystemLoader(paths),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        # A run renders every host's script from the same files: each template is read once,
        # not looked at again (a stat per template and include per host) at every use.
        auto_reload=False,
    )
    # `{{ value | sh }}`: one shell word whatever the value holds (names come from users).
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    # `# ... {{ value | comment }}`: text in a comment stays on its line (a newline in a value
    # would end the comment and start a command).
    env.filters["comment"] = comment
    env.filters["frr"] = frr_word
    # In a systemd unit: `%` starts a specifier and `$` a variable, even inside quotes.
    env.filters["unit_word"] = lambda value: unit_escape(shlex.quote(str(value)))
    env.filters["unit_text"] = lambda value: unit_escape(comment(value))
    return env


class TemplateProblem(UsageError):
    """A template that cannot be read or rendered (a mistake in one of `--templates DIR`)."""


def _where(e: BaseException) -> str:
    """`FILE, line N: ` of the template where `e` was raised (Jinja puts the template's own
    lines into the traceback it rewrites)."""
    filename, line = getattr(e, "filename", None), getattr(e, "lineno", None)
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            filename, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return f"template {filename}, line {line}: " if filename else "a template: "


FRR_WORD = re.compile(r"[A-Za-z0-9_.:/-]+")


def frr_word(value: object) -> str:
    """`value` as one word of FRR's configuration, or no configuration at all: the inventory
    allows nothing else in names and addresses, and this holds whatever made the plan."""
    text = str(value)
    if not FRR_WORD.fullmatch(text):
        raise ValueError(f"{text!r} cannot be a word of an FRR configuration")
    return text


def unit_escape(text: str) -> str:
    """`text` as systemd reads it back: `%%` is `%` (no specifier such as %h), `$$` is `$`
    (no environment variable)."""
    return text.replace("%", "%%").replace("$", "$$")


def comment(value: object) -> str:
    """`value` as text that stays inside a shell comment: every character that is not
    printable (newlines, other controls, line separators) becomes `?`."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


def boot_paths(mesh: Mesh, kinds: Sequence[type[boot.Boot]]) -> dict[str, Any]:
    """Every init's boot hook of this mesh: the gather reads which are there, down removes
    them."""
    return {
        "boots": [
            {
                "name": b.name,
                "files": b.files(mesh),
                "enabled": b.enabled(mesh),
                "disable": b.disable(mesh),
            }
            for b in kinds
        ],
        "boot_removed": sorted({p for b in kinds for p in b.removed(mesh)}),
    }


def host_paths(mesh: Mesh) -> dict[str, Any]:
    """What a mesh owns on a host, and what an older mesh-push left there: every template
    that touches them gets them from here (model.Mesh names them)."""
    return {
        "state_dir": mesh.state_dir,
        "key_file": mesh.key_file,
        "psk_dir": mesh.psk_dir,
        "mark": mesh.mark,
        "names_begin": mesh.names_begin,
        "names_end": mesh.names_end,
        "boot_name": mesh.boot_name,
        **boot_paths(mesh, boot.BOOTS),
        "pathspace": mesh.frr_pathspace,
        "vteps": str(mesh.wg_network),  # evpn: its unreachable route and rules are the mesh's
        "noroute_proto": model.NOROUTE_PROTO,
        "vtep_rule_pref": model.VTEP_RULE_PREF,
        "legacy": {
            "mark": model.LEGACY_MARK,
            "state_dir": model.LEGACY_STATE_DIR,
            "boot_unit": model.LEGACY_BOOT_UNIT,
            "boot_wants": model.LEGACY_BOOT_WANTS,
            "key_file": mesh.legacy_key_file,
        },
    }
