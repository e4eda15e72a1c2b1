"""One host's output is judged inside that host's boundary (issue 28): numbers are bounded where
they are parsed (core/reported.py), so a 400-digit number or a ping time of `1.2.3` fails or
marks that host alone, and every other host is still judged. Before, such a number reached the
judge (or the metrics) and its OverflowError ended the whole command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesh_push import cli
from mesh_push.core.reported import Unreadable, decimal, whole
from mesh_push.engine import connect, measure
from mesh_push.engine import keys as mesh_keys
from mesh_push.engine.outcome import Outcome
from mesh_push.engine.session import Session
from mesh_push.modes.evpn import observe as evpn_observe
from tests.kit import OBSERVED, plan
from tests.unit.modes.test_judge import HOSTS, LAB, fake_session, keys, lab_mesh

HUGE = "9" * 400
# Each: what rho prints instead of what the captured rho printed.
HOSTILE = {
    "clock": ("=== now\n1795712508", f"=== now\n{HUGE}"),
    "handshake": ("=\t1795712495", f"=\t{HUGE}"),
    "transfer": ("\t7788\t4980", f"\t7788\t{HUGE}"),
    "brctl": (" root port\t\t   1", f" root port\t\t   {HUGE}"),
    "mtu": ('"mtu":1550', f'"mtu":{HUGE}'),
    "float mtu": ('"mtu":1550', '"mtu":1e400'),
    "bridge timer": ('"forward_delay":400', f'"forward_delay":{HUGE}'),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_number_marks_one_host_and_the_others_are_judged(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    before, after = HOSTILE[case]

    def open_all(mesh: Any, access: Any, first: str | None, *_args: Any) -> Session:
        session = fake_session(dict.fromkeys(HOSTS, Outcome.PENDING))
        for h in HOSTS:
            text = (OBSERVED / f"{h}.txt").read_text()
            if h == "rho":
                assert before in text
                text = text.replace(before, after, 1)
            session.outputs[h] = text
        return session

    monkeypatch.setattr(connect, "open_all", open_all)
    monkeypatch.setattr(mesh_keys, "public_keys", lambda _mesh, **_kw: keys())
    metrics = tmp_path / "mesh.prom"
    assert cli.main(["status", "-i", str(LAB), "--prometheus", str(metrics)]) == cli.EXIT_FAILED
    assert cli.main(["status", "-i", str(LAB), "--json"]) == cli.EXIT_FAILED
    out = capsys.readouterr().out
    assert "OverflowError" not in out + metrics.read_text() and HUGE not in out
    verdicts = {h["name"]: h for h in json.loads(out[out.index("{") :])["hosts"]}
    assert verdicts["rho"]["healthy"] is not True
    assert {h: v["healthy"] for h, v in verdicts.items() if h != "rho"} == dict.fromkeys(
        set(HOSTS) - {"rho"}, True
    )


@pytest.mark.parametrize(
    ("value", "ok"),
    [("12", 12), (12, 12), ("0x1f", None), (HUGE, None), (-1, None), (True, None), ("١٢", None)],
)
def test_whole_numbers_are_digits_within_bounds(value: object, ok: int | None) -> None:
    if ok is None:
        with pytest.raises(Unreadable):
            whole(value, "it")
    else:
        assert whole(value, "it") == ok
    assert whole("0x1f", "it", 16) == 31
    for bad in ("1.2.3", "1e5", "nan", "inf", "-1", "9" * 20):
        with pytest.raises(Unreadable):
            decimal(bad, "it")


def test_evpn_counts_beyond_bounds_fail_that_host() -> None:
    sections = {
        "frr-daemons": "zebra bgpd",
        "frr-bgp": json.dumps(
            {"peers": {"10.0.0.1": {"state": "Established", "pfxRcd": 10**400}}}
        ).replace("Infinity", "1"),
    }
    with pytest.raises(Unreadable, match="out of range"):
        evpn_observe.parse(sections)


def test_measure_reads_each_host_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """`time=1.2.3 ms` from rho: rho's ends are not measured, every other host's are."""
    p = plan(lab_mesh(), keys())
    session = fake_session(dict.fromkeys(HOSTS, Outcome.UNCHANGED))

    def run(name: str, command: str, *_args: Any, **_kw: Any) -> Any:
        peers = [pe.name for pe in p.host(name).peers]
        time = "1.2.3" if name == "rho" else "1.5"
        text = "".join(
            f"{measure.MARK}{peer}\n64 bytes from x: icmp_seq=1 ttl=64 time={time} ms\n"
            "1 packets transmitted, 1 received, 0% packet loss\n"
            for peer in peers
        )
        return type("R", (), {"stdout": text})()

    monkeypatch.setattr(session, "run", run)
    results, errors = measure.measure(session, p, 1)
    assert list(errors) == ["rho"] and "ping's time is not a number: '1.2.3'" in errors["rho"]
    for lk in results:
        for here, end in lk.ends.items():
            assert (end.median_ms is None) == (here == "rho"), (lk.a, lk.b, here)


@pytest.mark.parametrize("years", [-20, 20, 200])
def test_a_host_clock_far_off_changes_no_verdict(
    years: int, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A fault the lab cannot make (a network namespace has the machine's clock): rho's clock
    years off. Its handshake times come from the same clock, so ages are its own and right:
    every host is judged as with the right time."""
    shift = years * 365 * 86400
    text = (OBSERVED / "rho.txt").read_text()
    lines = text.splitlines()
    out, section = [], ""
    for line in lines:
        if line.startswith("=== "):
            section = line[4:]
        elif section == "now":
            line = str(int(line) + shift)
        elif section == "wg-all-latest-handshakes":
            iface, key, ts = line.split("\t")
            line = f"{iface}\t{key}\t{int(ts) + shift if ts != '0' else 0}"
        out.append(line)
    shifted = "\n".join(out) + "\n"

    def open_all(mesh: Any, access: Any, first: str | None, *_args: Any) -> Session:
        session = fake_session(dict.fromkeys(HOSTS, Outcome.PENDING))
        for h in HOSTS:
            session.outputs[h] = shifted if h == "rho" else (OBSERVED / f"{h}.txt").read_text()
        return session

    monkeypatch.setattr(connect, "open_all", open_all)
    monkeypatch.setattr(mesh_keys, "public_keys", lambda _mesh, **_kw: keys())
    assert cli.main(["status", "-i", str(LAB), "--json"]) == 0
    verdicts = {h["name"]: h["healthy"] for h in json.loads(capsys.readouterr().out)["hosts"]}
    assert verdicts == dict.fromkeys(HOSTS, True)
