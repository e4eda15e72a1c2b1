"""The templates' side of quoting (tests/root/test_hostile_values.py runs the programs with
hostile values, as root): every value a template pastes into a shell program goes through a
filter that keeps it one word or one comment line, and FRR's words refuse what would end one.
Pure: no root."""

from __future__ import annotations

import re

import pytest
from jinja2 import nodes

from mesh_push.host import templates as render

SET_STEP = re.compile(r"{%-?\s*set\s+(\w+_step)\s*=\s*(.*?)\s*-?%}", re.S)


def templates() -> list[tuple[str, str]]:
    base = render.builtin_templates()
    found = sorted(base.rglob("*.j2"))
    assert len(found) > 20, found  # every sub-folder: stp, evpn, scripts, programs, include
    return [(t.relative_to(base).as_posix(), t.read_text()) for t in found]


def test_every_interpolation_is_filtered() -> None:
    """Every `{{ … }}` in a template that lands in a shell program goes through `sh` (one
    word) or, inside a comment or a unit's text, `comment` (one line); only shell code the
    controller writes itself (arm, a boot hook's commands) is pasted as it is. FRR's files
    (frr*.j2) take `frr` (one word of FRR's syntax, which is also safe in the daemons file's
    quotes), and systemd units `unit_word` and `unit_text` (which also keep `%` and `$`
    literal).
    Checked on Jinja's own parse, so the filter must apply to the whole expression: in
    `{{ v ~ "/x" | sh }}` it applies to "/x" alone (a filter binds tighter than `~`)."""
    env = render.load_templates()
    # Shell code the controller writes itself (arm; a boot hook's enabled, enable and
    # disable, whose paths host/boot.py quotes), and step names the including template makes
    # (include/wireguard.sh.j2: literals and values through `sh`, checked where they are
    # set, below).
    pasted = {"arm", "enabled", "enable", "disable", "wg_step", "peers_step"}
    for name, text in templates():
        base = name.split("/")[-1]
        filters = {"sh", "comment"}
        if base.startswith("frr"):
            filters = {"sh", "comment", "frr"}
        elif base.endswith(".service.j2"):  # a systemd unit: its own quoting (below)
            filters = {"unit_word", "unit_text"}
        for out in env.parse(text).find_all(nodes.Output):
            for expr in out.nodes:
                if isinstance(expr, nodes.TemplateData):
                    continue
                if isinstance(expr, nodes.Name) and expr.name in pasted:
                    continue
                ok = isinstance(expr, nodes.Filter) and expr.name in filters
                assert ok, f"{name}, line {expr.lineno}: an expression not wholly through {filters}"


def test_a_filter_on_part_of_an_expression_is_caught() -> None:
    env = render.load_templates()
    out = next(env.parse('{{ v ~ "/x" | sh }}').find_all(nodes.Output))
    assert not isinstance(out.nodes[0], nodes.Filter)
    out = next(env.parse('{{ (v ~ "/x") | sh }}').find_all(nodes.Output))
    assert isinstance(out.nodes[0], nodes.Filter) and out.nodes[0].name == "sh"


def test_step_names_are_literals_and_quoted_values() -> None:
    """What `{{ wg_step }}` and `{{ peers_step }}` paste: string literals joined (`~`) with
    values each through `sh`, nothing else."""
    seen = set()
    for name, text in templates():
        for var, expr in SET_STEP.findall(text):
            seen.add(var)
            rest = re.sub(r"'[^'\\]*'", "", expr)  # the literals (shell words themselves)
            rest = re.sub(r"\(\s*[\w.]+\s*\|\s*sh\s*\)", "", rest)  # values through `sh`
            assert re.fullmatch(r"[\s~]*", rest), f"{name}: set {var} = {expr}"
    assert seen == {"wg_step", "peers_step"}


@pytest.mark.parametrize("value", ["a b", "x\ny", "!", "a;b", '"', "$(id)", "`id`", "", "a#b"])
def test_frr_words_refuse_what_could_end_a_line_or_a_quote(value: str) -> None:
    with pytest.raises(ValueError):
        render.frr_word(value)


@pytest.mark.parametrize(
    "name", ["%h", "$HOME", "${HOME}", "a%%b", "$$", "x'y", 'q"r', "a b", "%n.service", "%"]
)
def test_the_boot_unit_keeps_every_value_literal(name: str) -> None:
    """systemd expands `%` specifiers and `$` variables in a unit even inside quotes: read
    back as systemd does (`%%` is `%`, `$$` is `$`, then its shell-like quoting), the unit
    runs the mesh's own script and names the mesh as it is."""
    import dataclasses
    import shlex

    from mesh_push import inventory
    from mesh_push.host import programs
    from mesh_push.host.boot import SystemdBoot
    from tests.kit import ROOT

    mesh = dataclasses.replace(inventory.load(ROOT / "inventory/seed.yaml"), name=name)
    text = programs.boot_hook(mesh, SystemdBoot)["files"][0]["text"]
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )

    def systemd(value: str) -> str:
        assert re.fullmatch(r"([^%$]|%%|\$\$)*", value), value  # nothing systemd would expand
        return value.replace("%%", "%").replace("$$", "$")

    assert shlex.split(systemd(fields["ExecStart"])) == ["/bin/sh", f"{mesh.state_dir}/apply.sh"]
    assert systemd(fields["Description"]) == f"mesh-push: bring mesh {name} back at boot"
