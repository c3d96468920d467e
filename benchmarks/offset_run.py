"""Benchmark: one monthly offset day (按月冲还贷, OFF-2/OFF-4) over a realistically seeded store.

Seeds N loans a few years into repayment (most borrowers with a paying spouse), their fund accounts
with ~10 years of monthly contributions, mandates signed long ago; then runs the deduction day for
all N loans, re-runs it (the no-op path), measures the raw eventsourcing append rate on the same
store, and prints loans/s, events/s, RSS over the run and the ratio to the raw rate.

Usage: python benchmarks/offset_run.py --loans N [--db URL] [--history-years 10] [--profile]

Without ``--db`` a SQLite file in a temporary folder is used, and removed at the end unless ``--keep``; a
PostgreSQL URL without ``?schema=`` gets a scratch schema, dropped at the end unless ``--keep``.

The store is seeded by the bulk seeder (``benchmarks.seed_store``: the events, snapshots and audit
chain the commands would have written, from per-shape templates), so the chain is complete before the
timed run starts. ``seed`` is also what tests/test_offset_crash.py uses.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    emit, load_average, machine_busy, machine_ticks, process_cpu_seconds, raw_append_rates, rss_mib)
from ledger.app import Ledger  # noqa: E402
from ledger.application import CHINA_TZ, FixedClock  # noqa: E402
from ledger.storage import drop_postgres_schema, parse_database_url  # noqa: E402

from benchmarks.seed_household import RUN_DAY, SeedPlan  # noqa: E402
from benchmarks.seed_store import SHAPES_DEFAULT, seed_store  # noqa: E402

SNAPSHOT_SAMPLE = 200  # accounts and loans whose stored snapshot sizes are measured


def seed(ledger: Ledger, loans: int, run_day: date = RUN_DAY, history_years: int = 10,
         progress: Callable[[int, int], None] | None = None, first_index: int = 0,
         months_back: tuple[int, int] = (24, 60), terms_months: tuple[int, ...] = (360, 360, 240),
         shapes: int | None = SHAPES_DEFAULT) -> dict[str, Any]:
    """Seed ``loans`` households (2 to 5 years into repayment by default) with the bulk seeder
    (``benchmarks.seed_store``); returns counts and the seeding figures."""
    plan = SeedPlan(run_day=run_day, history_years=history_years, months_back=months_back,
                    terms_months=terms_months, shapes=shapes)
    report = seed_store(ledger, plan, range(first_index, first_index + loans),
                        progress=(lambda r: progress(r.households, loans)) if progress else None)
    assert report.households == loans, report.as_dict()
    return {"loans": loans, **report.as_dict()}


def seed_apart(url: str, loans: int, history_years: int) -> dict[str, Any]:
    """The bulk seeder in a process of its own (``benchmarks/seed_store.py``), so that the run's memory
    figures are the run's; returns its figures."""
    command = [sys.executable, str(Path(__file__).with_name("seed_store.py")), "--households", str(loans),
               "--db", url, "--history-years", str(history_years), "--json"]
    finished = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    *said, figures = finished.stdout.strip().splitlines()
    print(*said, sep="\n")
    return json.loads(figures)


# -- measuring ----------------------------------------------------------------------------------------------
def notification_count(ledger: Ledger) -> int:
    """Events in the store: counted rows (failed PostgreSQL inserts consume ids: never subtract ids)."""
    table = ledger.recorder.events_table_name
    if ledger.storage.engine == "sqlite":
        with ledger.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            return cursor.fetchone()[0]
    with ledger.recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) AS n FROM {ledger.recorder.datastore.schema}.{table.split('.')[-1]}")
        return cursor.fetchone()["n"]


def timed_run(ledger: Ledger, day: date, samples: list[float], profile: bool,
              workers: int = 1) -> tuple[Any, float, str]:
    def progress(done: int, total: int) -> None:
        samples.append(rss_mib())

    profiler = cProfile.Profile() if profile else None
    begun = time.perf_counter()
    if profiler:
        profiler.enable()
    report = ledger.run_offset_date(day, progress=progress, workers=workers)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - begun
    text = ""
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(30)
        text = out.getvalue()
    return report, elapsed, text


def snapshot_sizes(ledger: Ledger, sample: int = SNAPSHOT_SAMPLE) -> dict[str, int]:
    """The largest stored snapshot (bytes, seal included) of a sample of fund accounts and loans."""
    from ledger.aggregates.fund_account import FundAccount

    sizes = {}
    for name, ids in (("fund_snapshot_bytes", ledger.account_ids()[:sample]),
                      ("loan_snapshot_bytes", ledger.loan_ids()[:sample])):
        largest = 0
        for aggregate_id in ids:
            rows = ledger.snapshots.recorder.select_events(aggregate_id, desc=True, limit=1)
            largest = max([largest, *(len(r.state) for r in rows)])
        sizes[name] = largest
    return sizes


def open_store(db: str | None) -> tuple[str, Callable[[], None]]:
    if not db:
        folder = Path(tempfile.mkdtemp(prefix="offset-bench-"))  # GBs at 100,000 loans: removed at the end
        return f"sqlite:///{folder}/bench.sqlite3", lambda: shutil.rmtree(folder, ignore_errors=True)
    config = parse_database_url(db)
    if config.engine == "postgresql" and not config.schema:
        url = f"{db}{'&' if '?' in db else '?'}schema=bench_{uuid.uuid4().hex[:12]}"
        return url, lambda: drop_postgres_schema(parse_database_url(url))
    return db, lambda: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--db", default=None, help="store URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--history-years", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="processes for the run (PostgreSQL)")
    parser.add_argument("--raw-events", type=int, default=0, help="trivial aggregates for the raw rate (default N)")
    parser.add_argument("--profile", action="store_true", help="cProfile the run and print the top entries")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite store or scratch schema")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last line")
    args = parser.parse_args()
    url, drop = open_store(args.db)
    clock = FixedClock(datetime(RUN_DAY.year, RUN_DAY.month, RUN_DAY.day, 18, tzinfo=CHINA_TZ))
    ledger = None
    try:
        seeded = seed_apart(url, args.loans, args.history_years)
        ledger = Ledger(url, clock=clock)
        stored = notification_count(ledger)
        print(f"engine={ledger.storage.engine} seeded loans={args.loans} events={seeded['events']:,} "
              f"in {seeded['seconds']:.0f}s ({seeded['events_per_s']:,} events/s, {seeded['households_per_s']:,} "
              f"households/s, {seeded['templates']} shapes, store {seeded['store_bytes'] / 2**30:.2f} GiB); "
              f"store holds {stored:,} events", flush=True)

        load_before = load_average()
        samples: list[float] = [rss_mib()]
        cpu, ticks = process_cpu_seconds(), machine_ticks()
        report, elapsed, profile_text = timed_run(ledger, RUN_DAY, samples, args.profile, args.workers)
        cpu, machine = process_cpu_seconds() - cpu, machine_busy(ticks, machine_ticks())
        run_events = notification_count(ledger) - stored
        assert report.loans == args.loans and report.already == 0, report.as_dict()
        print(f"run: {report.loans} loans in {elapsed:.1f}s = {report.loans / elapsed:,.0f} loans/s, "
              f"{run_events:,} events = {run_events / elapsed:,.0f} events/s; deducted={report.deducted} "
              f"skipped={dict(report.skipped)} borrower={report.borrower_funds} spouse={report.spouse_funds} "
              f"cards={report.card} debits={report.debits_created}; {args.workers} worker(s); {cpu:.1f} CPU s in the run's "
              f"processes; the machine's {machine['machine_cores']} cores {machine['machine_busy']:.0%} busy "
              "(database server and everything else included)", flush=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"rss MiB during the run: start {samples[0]:.0f}, after first batch {samples[min(1, len(samples) - 1)]:.0f}, "
              f"max {max(samples):.0f}, end {samples[-1]:.0f}; peak rss {peak:.0f}", flush=True)

        again_samples: list[float] = []
        again, again_elapsed, _ = timed_run(ledger, RUN_DAY, again_samples, False)
        assert again.already == args.loans and again.deducted == 0, again.as_dict()
        print(f"no-op re-run: {again.loans / again_elapsed:,.0f} loans/s ({again_elapsed:.2f}s)", flush=True)

        sizes = snapshot_sizes(ledger)
        raw = raw_append_rates(ledger, args.raw_events or min(args.loans * 5, 50_000))
        ratio = run_events / elapsed / raw["raw_events_per_s"]
        print(f"raw append on this store: {raw['raw_events_per_s']:,.0f} events/s without the audit chain, "
              f"{raw['raw_chained_events_per_s']:,.0f} with it; ratio run/raw = {ratio:.2f}; snapshots: fund "
              f"{sizes['fund_snapshot_bytes']} B, loan {sizes['loan_snapshot_bytes']} B", flush=True)
        if profile_text:
            print(profile_text)
        emit({"n": args.loans, "store": ledger.storage.engine, "workers": args.workers,
              "loans_per_s": report.loans / elapsed, "events_per_s": run_events / elapsed,
              "cpu_seconds": cpu, **machine, "ratio": ratio, "noop_loans_per_s": again.loans / again_elapsed,
              "peak_rss_mib": peak, "rss_start_mib": samples[0], "rss_end_mib": samples[-1],
              **sizes, **raw, "seed_events_per_s": seeded["events_per_s"], "load_average_before": load_before,
              "load_average": load_average()}, args.json)
    finally:
        if ledger is not None:
            ledger.close()
        if not args.keep:
            drop()


if __name__ == "__main__":
    main()
