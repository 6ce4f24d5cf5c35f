"""Crash and resume (issue 6): `mailsift verify` killed with SIGKILL at any point of a run and
started again ends exactly where an uninterrupted run ends, and probes nothing twice but the
batches that were in flight.

Each kill aims at one phase of the run. It waits for a sign of that phase seen from outside (the
launch, the world's first DNS query or SMTP session, a history part, the catalog, the results
file), then a random delay: anywhere within the phase as an uninterrupted run timed it, or a few
milliseconds for history append and export, which last only that long. What the dead process
left behind then says how far it really got, and the test logs it (`pytest -s` shows the log).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl
import pytest

from engine.config import Config
from engine.sandbox.counters import WorldCounts
from engine.sandbox.demo_world import write_demo_list
from engine.sandbox.running import RunningWorld, run_world
from tests.engine.verify_process_support import calm_world, start_verify, stderr_of

pytestmark = pytest.mark.slow

ROWS: Final = 1500
KILLS: Final = 20
# Replies this slow make the probing phase last a second or two on loopback.
SERVER_LATENCY_S: Final = 0.03
PHASES: Final = ("ingest", "dns", "probing", "history", "export")
POLL_S: Final = 0.002
RUN_TIMEOUT_S: Final = 120.0
DEFAULTS: Final = Config()
# A session holds at most one batch in flight, and a host at most this many sessions at once.
IN_FLIGHT_PER_HOST: Final = DEFAULTS.smtp_per_mx_concurrency * DEFAULTS.smtp_rcpt_per_session


@dataclass(frozen=True)
class Timeline:
    """Seconds from launch at which an uninterrupted run began its DNS, probing and history."""

    dns: float
    probing: float
    history: float


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run: its results, timeline and the addresses it probed."""

    source: Path
    results: pl.DataFrame
    verdict_rows: int
    timeline: Timeline
    addresses: frozenset[str]
    unknown: frozenset[str]  # a finished run's rerun probes these again, by design


class Watch:
    """Observes a `mailsift verify` process from outside: the world's counters and its files.

    Each sign marks a point of the run, in run order, under the phase it belongs to.
    """

    def __init__(self, running: RunningWorld, data_dir: Path, out: Path) -> None:
        before = running.counters()
        history = data_dir / "history"

        def part(kind: str) -> Callable[[], bool]:
            return lambda: any((history / kind).glob("*.parquet"))

        self.signs: dict[str, tuple[str, Callable[[], bool]]] = {
            "launched": ("ingest", lambda: True),
            "first DNS query": (
                "dns",
                lambda: running.counters().dns.queries > before.dns.queries,
            ),
            "first SMTP session": (
                "probing",
                lambda: running.counters().smtp.sessions > before.smtp.sessions,
            ),
            "history directory": ("history", history.exists),
            "verdicts part": ("history", part("verdicts")),
            "replies part": ("history", part("replies")),
            "ledger part": ("history", part("ledger")),
            "catalog": ("export", (data_dir / "mailsift.duckdb").exists),
            "results file": ("export", out.exists),
            "summary file": ("export", out.with_name(f"{out.stem}.summary.json").exists),
            "checkpoint removed": ("after export", lambda: not _checkpoint_dirs(data_dir)),
        }

    def signs_of(self, phase: str) -> list[str]:
        return [name for name, (of, _) in self.signs.items() if of == phase]

    def seen(self, sign: str) -> Callable[[], bool]:
        return self.signs[sign][1]

    def last_sign(self) -> tuple[str, str]:
        """(phase, sign) of the last point the process had reached, judged by what it left."""
        reached = "launched"
        for name, (_, seen) in list(self.signs.items())[1:]:
            if name == "checkpoint removed" and not self.seen("catalog")():
                break  # no checkpoint yet is not a checkpoint removed
            if not seen():
                break
            reached = name
        return self.signs[reached][0], reached


def _wait_for(sign: Callable[[], bool], process: subprocess.Popen[bytes]) -> bool:
    """True once `sign` holds; False if the process ended first."""
    while not sign():
        if process.poll() is not None:
            return False
        time.sleep(POLL_S)
    return True


def _run_to_end(process: subprocess.Popen[bytes], out: Path) -> None:
    code = process.wait(RUN_TIMEOUT_S)
    assert code == 0, f"mailsift verify exited {code}: {stderr_of(out)[-2000:]}"


def _delay(phase: str, timeline: Timeline, rng: random.Random) -> float:
    """How long after the phase's sign to kill: anywhere within the phase as the reference
    timed it; history append and export last milliseconds, so right at one of their signs."""
    if phase == "ingest":  # start-up (imports), ingest, prepare and the cache look-up
        return rng.uniform(0.3, 0.95) * timeline.dns
    if phase == "dns":
        return rng.uniform(0.0, 0.9) * (timeline.probing - timeline.dns)
    if phase == "probing":
        return rng.uniform(0.0, 0.9) * (timeline.history - timeline.probing)
    return rng.uniform(0.0, 0.005)


def _checkpoint_dirs(data_dir: Path) -> list[Path]:
    return list(data_dir.glob("lists/*/probes"))


def _rcpt_increase(before: WorldCounts, after: WorldCounts) -> dict[str, Counter[str]]:
    """RCPTs per address sent between two snapshots, per mail server."""
    increase: dict[str, Counter[str]] = {}
    for name, counts in after.servers.items():
        earlier = before.servers[name].rcpts
        sent = Counter(
            {a: n - earlier.get(a, 0) for a, n in counts.rcpts.items() if n > earlier.get(a, 0)}
        )
        if sent:
            increase[name] = sent
    return increase


@pytest.fixture(scope="module")
def running() -> Iterator[RunningWorld]:
    with run_world(calm_world(SERVER_LATENCY_S)) as world:
        yield world


@pytest.fixture(scope="module")
def reference(running: RunningWorld, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    workdir = tmp_path_factory.mktemp("reference")
    source = write_demo_list(workdir / "list.csv", rows=ROWS)
    # A first start compiles and caches what the timed run then only loads.
    warm_up = workdir / "warm-up.csv"
    warming = start_verify(running, source, warm_up, workdir / "warm-up", "--depth", "syntax")
    _run_to_end(warming, warm_up)
    out, data_dir = workdir / "results.csv", workdir / "data"
    watch = Watch(running, data_dir, out)
    before = running.counters()
    launched = time.monotonic()
    process = start_verify(running, source, out, data_dir)
    seen = {}
    for sign in ("first DNS query", "first SMTP session", "history directory"):
        assert _wait_for(watch.seen(sign), process), f"no {sign}: {stderr_of(out)[-2000:]}"
        seen[sign] = time.monotonic() - launched
    _run_to_end(process, out)
    timeline = Timeline(*seen.values())
    results = pl.read_csv(out, infer_schema=False)
    normalized = pl.col("email_normalized").str.to_lowercase()
    addresses = frozenset(results.select(normalized).to_series().drop_nulls())
    unknown = frozenset(
        results.filter(pl.col("status") == "unknown").select(normalized).to_series()
    )
    sent = Counter[str]()
    for per_address in _rcpt_increase(before, running.counters()).values():
        sent.update({a: n for a, n in per_address.items() if a in addresses})
    # The premise of exact comparisons: one RCPT per address, whatever the timing.
    assert sent and set(sent.values()) == {1}, Counter(sent.values())
    print(f"\nreference run: {timeline}, {sent.total()} RCPTs to {len(sent)} addresses")
    verdict_rows = _verdict_parts(data_dir).height
    return Reference(source, results, verdict_rows, timeline, frozenset(sent), unknown & set(sent))


def _verdict_parts(data_dir: Path) -> pl.DataFrame:
    return pl.concat(
        [
            pl.read_parquet(part)
            for part in sorted((data_dir / "history/verdicts").glob("*.parquet"))
        ]
    )


@pytest.mark.parametrize("kill", range(KILLS), ids=lambda k: f"{PHASES[k % len(PHASES)]}-{k}")
def test_a_run_killed_at_a_random_point_resumes_to_the_uninterrupted_result(
    kill: int, running: RunningWorld, reference: Reference, tmp_path: Path
) -> None:
    target = PHASES[kill % len(PHASES)]
    rng = random.Random(6000 + kill)
    data_dir, out = tmp_path / "data", tmp_path / "results.csv"
    watch = Watch(running, data_dir, out)
    signs = watch.signs_of(target)
    sign = signs[kill // len(PHASES) % len(signs)]  # each sign of the phase in turn
    delay = _delay(target, reference.timeline, rng)
    before = running.counters()

    process = start_verify(running, reference.source, out, data_dir)
    launched = time.monotonic()
    killed = _wait_for(watch.seen(sign), process)
    if killed:
        time.sleep(delay)
        killed = process.poll() is None
        process.send_signal(signal.SIGKILL)
    process.wait()
    at = time.monotonic() - launched
    reached, last_sign = watch.last_sign() if killed else ("completed", "exit")
    at_kill = running.counters()

    _run_to_end(start_verify(running, reference.source, out, data_dir), out)

    sent = _rcpt_increase(before, running.counters())
    killed_run = _rcpt_increase(before, at_kill)
    # A run that got as far as removing its checkpoint had finished: the rerun is a new run, and
    # a new run checks the unknowns again rather than trusting them.
    finished = reached in ("after export", "completed")
    rechecked = reference.unknown if finished else frozenset()
    twice = {
        host: sorted(
            a for a, n in per_address.items() if n > 1 and a in reference.addresses - rechecked
        )
        for host, per_address in sent.items()
    }
    runs = _verdict_parts(data_dir).get_column("run_id").n_unique()
    leftovers = len(list(data_dir.glob("history/*/.*.tmp")))
    print(
        f"kill {kill}: aimed at {target} ({sign} +{delay * 1000:.0f} ms), died at {at:.2f}s "
        f"in {reached} (after: {last_sign}); RCPTs before the kill "
        f"{sum(c.total() for c in killed_run.values())}, probed twice "
        f"{sum(map(len, twice.values()))} {_nonzero(twice)}, unknowns rechecked "
        f"{len(rechecked)}, runs in the history {runs}, temporary files left {leftovers}"
    )
    results = pl.read_csv(out, infer_schema=False)
    _assert_every_row_once_in_order(results, reference.results)
    _assert_same_verdicts(results, reference.results)
    _assert_history_whole(data_dir, reference.verdict_rows)
    # A resumed run is the same run (engine.remember.claimed_run_id): it is in the history once.
    assert runs == (2 if finished else 1), f"{runs} runs in the history after a kill in {reached}"
    leftover = [*_checkpoint_dirs(data_dir), *data_dir.glob("lists/*/.probes-retired-*")]
    assert not leftover, "a finished run leaves no checkpoint behind"
    probes = Counter[str]()
    for per_address in sent.values():
        probes.update({a: n for a, n in per_address.items() if a in reference.addresses})
    assert set(probes) == reference.addresses, "every address of the list was probed"
    assert max(probes.values()) <= 2, [a for a, n in probes.items() if n > 2][:5]
    over = {host: len(a) for host, a in twice.items() if len(a) > IN_FLIGHT_PER_HOST}
    assert not over, f"more addresses probed twice than a host has in flight: {over}"


def _nonzero(per_host: dict[str, list[str]]) -> dict[str, int]:
    return {host: len(addresses) for host, addresses in per_host.items() if addresses}


def _assert_every_row_once_in_order(results: pl.DataFrame, expected: pl.DataFrame) -> None:
    originals = ["email", "first_name", "last_name"]
    assert results.height == expected.height
    assert results.select(originals).equals(expected.select(originals))


def _assert_same_verdicts(results: pl.DataFrame, expected: pl.DataFrame) -> None:
    verdict = ["email", "status", "sub_status"]
    differing = (
        results.select(verdict)
        .with_row_index()
        .join(expected.select(verdict).with_row_index(), on="index", suffix="_expected")
        .filter(
            (pl.col("status") != pl.col("status_expected"))
            | (pl.col("sub_status").ne_missing(pl.col("sub_status_expected")))
        )
    )
    assert differing.is_empty(), differing.head(10)


def _assert_history_whole(data_dir: Path, verdict_rows: int) -> None:
    """Every part reads; no run holds an address twice; the finished run wrote all its rows."""
    history = data_dir / "history"
    for part in history.glob("*/*.parquet"):
        if not part.name.startswith("."):  # what a reader lists (engine.history.list_parts)
            pl.read_parquet(part)  # raises on half a part
    assert not (history / "quarantine").exists(), os.listdir(history / "quarantine")
    verdicts = _verdict_parts(data_dir)
    doubled = verdicts.group_by("run_id", "dedup_key").len().filter(pl.col("len") > 1)
    assert doubled.is_empty(), doubled.head()
    ledger = pl.concat([pl.read_parquet(p) for p in (history / "ledger").glob("*.parquet")])
    finished = ledger.get_column("run_id").to_list()
    assert len(finished) == len(set(finished))
    last = verdicts.filter(pl.col("run_id") == ledger.sort("finished_at").get_column("run_id")[-1])
    assert last.height == verdict_rows
