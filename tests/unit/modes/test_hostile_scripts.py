"""The templates' side of quoting (tests/root/test_hostile_values.py runs the programs with
hostile values, as root): every value a template pastes into a shell program goes through a
filter that keeps it one word or one comment line, and FRR's words refuse what would end one.
Pure: no root."""

from __future__ import annotations

import re

import pytest

from mesh_push.host import templates as render

# Shell code the controller writes itself, pasted as it is.
CODE = {"{{ arm -}}", "{{ reload }}"}
# Step names the including template makes (templates/include/wireguard.sh.j2): shell words of
# string literals and values through `sh`, checked where they are set.
STEP_NAMES = {"{{ wg_step }}", "{{ peers_step }}"}
SET_STEP = re.compile(r"{%-?\s*set\s+(\w+_step)\s*=\s*(.*?)\s*-?%}", re.S)


def templates() -> list[tuple[str, str]]:
    base = render.builtin_templates()
    found = sorted(base.rglob("*.j2"))
    assert len(found) > 20, found  # every sub-folder: stp, evpn, scripts, programs, include
    return [(t.relative_to(base).as_posix(), t.read_text()) for t in found]


def test_every_interpolation_is_filtered() -> None:
    """Every `{{ … }}` in a template that lands in a shell program goes through `sh` (one
    word) or, inside a comment or a unit's text, `comment` (one line); only shell code the
    controller writes itself (arm, reload) is pasted as it is. FRR's files (frr*.j2) take
    `frr` (one word of FRR's syntax, which is also safe in the daemons file's quotes)."""
    for name, text in templates():
        filters = "sh|comment|frr" if name.split("/")[-1].startswith("frr") else "sh|comment"
        for expr in re.findall(r"{{.*?}}", text, re.S):
            if expr in CODE or expr in STEP_NAMES:
                continue
            assert re.search(rf"\|\s*({filters})\s*-?}}}}$", expr), f"{name}: {expr}"


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
