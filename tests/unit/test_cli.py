"""The command line's contract with its user: every command's --help says whether it contacts
hosts and what its exit codes mean, and a "no" at a prompt has an exit code of its own."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_push import cli
from tests.kit import ROOT


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


def test_every_command_says_whether_it_contacts_hosts_and_its_exit_codes() -> None:
    found = dict(commands(cli.build_parser()))
    assert {"plan", "up", "down", "status", "measure", "rotate-keys", "render"} <= {
        p[0] for p in found
    }
    for path, parser in found.items():
        if path == ("lab",):
            continue  # a group: each of its commands says it
        text = parser.format_help()
        assert "contacts hosts: " in text and "exit codes: " in text, path


@pytest.mark.parametrize("argv", [["down"], ["rotate-keys", "rho"]])
def test_no_at_the_prompt_exits_4_and_contacts_nobody(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asked before any host is reached: "no" changes nothing, and is no host's failure."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))

    def no_ssh(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a host was contacted")

    monkeypatch.setattr("mesh_push.engine.connect.open_all", no_ssh)
    code = cli.main([argv[0], "-i", str(ROOT / "inventory/lab.yaml"), *argv[1:]])
    assert code == cli.EXIT_DECLINED == 4
    assert capsys.readouterr().out.rstrip().endswith("[y/N]")


def test_one_spelling_for_host_lists_the_older_ones_still_read() -> None:
    """`a,b` everywhere (--limit, rotate-keys, --cut, lab cut); separate words where a
    command takes words; `--cut a-b`, the older spelling, still read."""
    from mesh_push import inventory
    from mesh_push.cli.handlers import _parse_cut
    from mesh_push.core.values import host_list

    assert host_list(["rho,pi0"]) == host_list(["rho", "pi0"]) == ["rho", "pi0"]
    assert host_list(["rho,", "pi0,bob"]) == ["rho", "pi0", "bob"]
    mesh = inventory.load(ROOT / "inventory/seed.yaml")
    assert _parse_cut("bob,epsilon", mesh) == _parse_cut("bob-epsilon", mesh)
    args = cli.build_parser().parse_args(["rotate-keys", "-i", "x.yaml", "rho,pi0", "bob"])
    assert host_list(args.hosts) == ["rho", "pi0", "bob"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["down", "--keep", "pi0"], "takes no HOST or --limit"),
        (["down", "--keep", "--purge"], "no --purge"),
        (["up", "--adopt"], "needs `mesh.keys: host`"),
    ],
)
def test_adoption_s_usage_mistakes_exit_2_before_any_host(
    argv: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """`down --keep` and `up --adopt` (issue 29): what cannot work is said at once."""

    def no_ssh(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a host was contacted")

    monkeypatch.setattr("mesh_push.engine.connect.open_all", no_ssh)
    inv = tmp_path / "lab.yaml"
    text = (ROOT / "inventory/lab.yaml").read_text()
    inv.write_text(text.replace("keys: host", "keys: controller") if "--adopt" in argv else text)
    code = cli.main([argv[0], "-i", str(inv), *argv[1:], "--yes"])
    assert code == 2
    assert says in capsys.readouterr().err
