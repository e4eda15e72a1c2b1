"""Nothing from an inventory or a host acts on the operator's terminal (issue 14): rich markup
and control characters in names and in host output are printed as text; every --json output
is strict JSON; `status --watch` takes only a positive finite number."""

from __future__ import annotations

import io
import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mesh_push import cli
from mesh_push.cli import handlers
from mesh_push.core.model import Host, Link, Mesh, Mtu, SshDefaults, Stp
from mesh_push.core.problems import UsageError
from mesh_push.engine.commands import Run
from mesh_push.engine.outcome import HostReport, Outcome
from mesh_push.engine.verify import Verification
from mesh_push.host.state import HostState, WgIf
from mesh_push.modes.judgement import Finding, HostVerdict, Kind
from mesh_push.modes.stp.judge import StpJudgement
from mesh_push.modes.stp.observe import StpBridge, StpPort, StpSeen
from mesh_push.views import console, reports
from mesh_push.views import run as views_run
from tests.kit import plan

# Names no inventory lets through, built into a model directly.
MARKUP = "[red]a"
ANSI = "\x1b[31mb"
OSC = "c\x1b]0;pwned\x07"
BIDI = "d\u202eevil"
NAMES = (MARKUP, ANSI, OSC, BIDI)
CONTROL = ("\x1b", "\x07", "\u202e", "\x9b")


def _render(show: Any, *args: Any, **kwargs: Any) -> str:
    buf = io.StringIO()
    show(*args, **kwargs, out=Console(file=buf, force_terminal=False, width=200))
    return buf.getvalue()


def _clean(text: str) -> None:
    for ch in CONTROL:
        assert ch not in text, f"{ch!r} reached the terminal"


def _mesh(names: tuple[str, ...] = NAMES, latency: float | None = None) -> Mesh:
    hosts = tuple(
        Host(name=n, endpoint="static", address=IPv4Address("198.18.0.0") + i + 1, number=i + 1)
        for i, n in enumerate(names)
    )
    links = tuple(
        Link(names[i], names[(i + 1) % len(names)], i + 1, latency) for i in range(len(names))
    )
    return Mesh(
        source=Path("hostile.yaml"),
        name="[bold]mesh\x1b[2J",
        wg_interface="wg0",
        wg_port=51820,
        wg_network=IPv4Network("10.88.0.0/16"),
        bridge="internet",
        bridge_network=IPv4Network("10.99.0.0/16"),
        vxlan_port=4789,
        mtu=Mtu("fragment", 1500, 1550, 1500),
        stp=Stp(),
        keys="host",
        ssh=SshDefaults(),
        hosts=hosts,
        links=links,
        state_file=Path("/nonexistent/state.json"),
        keystore=Path("/nonexistent/keys"),
    )


def test_safe_text() -> None:
    assert console.safe_text("[red]a") == "\\[red]a"
    assert console.safe_text("\x1b[31mx\x1b[0m") == "\\x1b[31mx\\x1b[0m"
    assert console.safe_text("a\r\nb\tc\x9bd") == "a\\x0d\nb\tc\\x9bd"
    assert console.safe_text("a\nb", multiline=False) == "a\\x0ab"
    assert console.safe_text("x\u202ey") == "x\\u202ey"
    assert console.safe_text("Zürich — ok") == "Zürich — ok"


def test_plan_shows_hostile_names_as_text() -> None:
    p = plan(_mesh())
    text = _render(reports.show_plan, p)
    _clean(text)
    assert "[red]a" in text  # shown as written, not as red "a"
    assert "\\x1b[31mb" in text
    assert "c\\x1b]0;pwned\\x07" in text
    assert "d\\u202eevil" in text
    assert "[bold]mesh\\x1b[2J" in text
    # the same through the plain tables of a big plan
    many = tuple(f"h{i}" for i in range(300)) + NAMES
    text = _render(reports.show_plan, plan(_mesh(many)))
    _clean(text)
    assert "[red]a" in text and "\\x1b[31mb" in text


def test_plan_json_escapes_rather_than_neutralises() -> None:
    p = plan(_mesh())
    data = json.loads(json.dumps(reports.plan_json(p)))
    assert [h["name"] for h in data["hosts"]] == list(NAMES)  # JSON escapes them itself


def test_host_output_in_run_results_and_progress() -> None:
    hostile = "sudo: \x1b]0;owned\x07[bold red]password[/] wrong\n\x1b[2Jline two"
    bad = HostReport(ANSI)
    bad.fail(Outcome.FAILED, "apply", "the host script failed", 1, hostile)
    ok = HostReport(MARKUP, Outcome.CHANGED, changes=["\x1b[1mwg0 up"])
    verification = Verification(False, 1.0, [f"{OSC}: {hostile}"], {}, not_verified=[BIDI])
    run = Run({ANSI: bad, MARKUP: ok}, verification=verification)
    text = _render(views_run.show_run, run)
    _clean(text)
    assert "[bold red]password[/]" in text and "\\x1b]0;owned\\x07" in text
    assert "[red]a" in text and "\\x1b[31mb" in text

    buf = io.StringIO()
    progress = views_run.Progress()
    progress.out = Console(file=buf, force_terminal=False, width=200)
    progress.host(MARKUP, hostile)
    _clean(buf.getvalue())
    assert "[red]a" in buf.getvalue() and "[bold red]password[/]" in buf.getvalue()


def test_status_shows_gathered_state_as_text() -> None:
    p = plan(_mesh())
    # What a host printed, as the parsers leave it: numbers too where a host could print any
    # text (the views never trust the type).
    bridge = StpBridge(
        name="internet",
        bridge_id="8000.[blink]x\x1b[5m",
        designated_root="\x1b[2Jroot",
        root_port="[red]p",  # type: ignore[arg-type]
        path_cost="\x07",  # type: ignore[arg-type]
        ports={"w": StpPort(name="w\x1b", number=1, state="forwarding\x1b[0m", path_cost=1)},
    )
    state = HostState(
        hostname="h",
        now=0,
        links={},
        wg={"wg0": WgIf(public_key="k", listen_port=1)},
        mode_state=StpSeen(bridge, root_id=""),
    )
    hosts = {
        n: HostVerdict(
            name=n,
            reachable=bool(i % 2),
            healthy=False,
            findings=[Finding(Kind.RUNTIME, f"{n}: \x1b[31m[red]bad\x07")],
            state=state if i % 2 else None,
        )
        for i, n in enumerate(NAMES)
    }
    wire = {
        "hosts": [MARKUP, ANSI],
        "vni": 1,
        "ends": {
            MARKUP: {
                "handshake_age_s": None,
                "vxlan_up": True,
                "stp_state": "[red]x\x1b",
                "mtu": "\x1b[1m1500",
                "preshared_key": True,
            }
        },
        "problems": ["\x1b]0;t\x07"],
    }
    j = StpJudgement(
        healthy=False,
        hosts=hosts,
        wires=[wire],
        reasons=["\x1b[2J[bold]r"],
        tree_matches_plan=None,
    )
    text = _render(reports.show_status, p, j)
    _clean(text)
    assert "8000.[blink]x\\x1b[5m" in text and "[red]bad" in text and "[bold]r" in text


def _printed(capsys: pytest.CaptureFixture[str], data: Any) -> Any:
    console.print_json(data)

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(capsys.readouterr().out, parse_constant=refuse)


def test_print_json_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    data = {"a": float("inf"), "b": [float("nan"), 1.5], "c": (float("-inf"),), "d": "x"}
    assert _printed(capsys, data) == {"a": None, "b": [None, 1.5], "c": [None], "d": "x"}


def test_plan_json_of_huge_latencies_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    # The inventory refuses such latencies now; a model built directly still prints JSON.
    p = plan(_mesh(("a", "b", "c"), latency=1e308))
    tree = _printed(capsys, reports.plan_json(p))["tree"]
    assert tree["routing_cost_ms"] is None and tree["planned_routing_cost_ms"] is None
    assert any(pair["latency_ms"] is None for pair in tree["pairs"])


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "1e999", "soon", ""])
def test_watch_takes_a_positive_finite_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["status", "-i", "nowhere.yaml", "--watch", value])
    assert info.value.code == 2
    assert "--watch" in capsys.readouterr().err


def test_watch_accepts_seconds() -> None:
    args = cli.build_parser().parse_args(["status", "-i", "x.yaml", "--watch", "2.5"])
    assert args.watch == 2.5


def test_usage_errors_are_printed_as_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def plan_with_a_bad_cut(_args: Any) -> int:
        raise UsageError("--cut \x1b[2J: no such link")

    monkeypatch.setattr(handlers, "plan", plan_with_a_bad_cut)
    assert cli.main(["plan", "-i", "x.yaml"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "\x1b" not in err and "--cut \\x1b[2J: no such link" in err
