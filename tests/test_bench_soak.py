"""bench soak (issue #11) end to end for a few seconds with a tiny mix, so the benchmark cannot rot."""

from __future__ import annotations

import pytest

from bench.__main__ import _joined
from bench.__main__ import main as bench_main
from bench.soak import Options, parse, rss_within_margin, soak


@pytest.mark.nats
@pytest.mark.slow
async def test_a_short_soak_passes_and_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    failures = await soak(Options(seconds=8, concurrency=2, pause=0.02, grace=30, fault_rate=0.5))
    out = capsys.readouterr().out
    assert failures == [], out
    for figure in (
        "requests by action and status:",
        "unexpected answers: none",
        "non-terminal jobs after a grace of up to 30 s: 0",
        "RSS in MiB",
        "health at the end: fetcher ok, analyzer ok, gateway ok, nats-server ok",
        "SOAK PASSED",
    ):
        assert figure in out, out
    # The mix really ran: jobs of both kinds, and the provider's faults among the reviews.
    assert "ordinary ready:" in out
    assert "hostile failed:" in out
    assert "faults: {}" not in out


def test_minutes_is_taken_with_or_without_an_equals_sign() -> None:
    assert _joined(["soak", "--minutes", "2"], ["fetch", "soak"]) == ["soak", "--minutes=2"]
    assert _joined(["--quick", "soak"], ["fetch", "soak"]) == ["--quick", "soak"]
    assert parse(["--minutes=2", "--concurrency=5"]) == Options(seconds=120.0, concurrency=5)
    with pytest.raises(SystemExit, match="--nonsense"):
        parse(["--nonsense=1"])


def test_only_a_named_run_starts_the_soak(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    def record(name: str) -> _Nothing:
        started.append(name)
        return _Nothing()

    monkeypatch.setattr("importlib.import_module", record)
    bench_main(["--x=1"])
    assert "bench.soak" not in started
    assert "bench.fetch" in started
    started.clear()
    bench_main(["soak", "--minutes", "0"])
    assert started == ["bench.soak"]


class _Nothing:
    def main(self, argv: list[str]) -> None:
        pass


def test_the_rss_margin() -> None:
    assert rss_within_margin(100 * 1024, 164 * 1024)  # + 64 MiB
    assert not rss_within_margin(100 * 1024, 165 * 1024)
    assert rss_within_margin(400 * 1024, 600 * 1024)  # + 50 %
    assert not rss_within_margin(400 * 1024, 601 * 1024)
