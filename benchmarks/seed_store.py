"""Bulk seeder: a benchmark store of real size in minutes, holding what the commands would have written.

N households (``benchmarks.seed_household``: borrower and often a paying spouse, fund accounts with
``--history-years`` of monthly contributions and each 30 June's interest settlement, a loan years into
repayment paid on time by card with the daily job's accruals and 1 January's repricing, a signed offset
mandate, payouts and serials). Households come in *shapes* (their numbers); each shape is lived once
through the real aggregate methods and written as a template (``benchmarks.seed_templates``), and every
household of it is that template with its own identity filled in — ``bytes % tuple`` instead of
eventsourcing's per-event machinery. Rows go to the store at explicit positions with their audit chain
rows, snapshots and an anchor in one transaction per batch (``benchmarks.seed_writers``), so the chain
is complete when the seeder ends and ``gjj audit verify`` checks every row against it.

Every ``--check-every`` th household is also lived through the methods itself and its rows compared
byte for byte with the filled ones (a wrong template stops the run). tests/test_bulk_seeder.py compares
a whole sample with ``benchmarks.seed_commands`` (the jobs run by the ledger's commands, day by day).

Usage: python benchmarks/seed_store.py --households N [--db URL] [--history-years 10] [--shapes 500]
       [--check-every 1000] [--json]
Without ``--db`` a SQLite file in a temporary folder is used (and removed unless ``--keep``).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.app import Ledger  # noqa: E402
from ledger.application import CHINA_TZ, FixedClock  # noqa: E402

from benchmarks.seed_household import RUN_DAY, SeedPlan, open_employers  # noqa: E402
from benchmarks.seed_templates import SerialState, Template, build_template, fill  # noqa: E402
from benchmarks.seed_writers import writer_for  # noqa: E402

SHAPES_DEFAULT = 500  # distinct households lived through the methods; the others are their copies
BATCH_EVENTS_MAX = 50_000  # events per transaction (~75 MB of rows; larger batches were no faster)
CHECK_EVERY_DEFAULT = 1000
CHECKED_SHAPES_MAX = 20  # the first shapes' templates are also checked against a replay of their events


@dataclass
class SeedReport:
    """What one run wrote, and how fast."""

    households: int = 0
    events: int = 0
    snapshots: int = 0
    templates: int = 0
    checked: int = 0
    seconds: float = 0.0
    template_seconds: float = 0.0
    write_seconds: float = 0.0
    head: int = 0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def households_per_s(self) -> float:
        return self.households / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_s": round(self.events_per_s), "households_per_s":
                round(self.households_per_s, 1)}


@dataclass
class Batch:
    rows: list[Any] = field(default_factory=list)
    snapshots: list[Any] = field(default_factory=list)
    households: int = 0


def shapes_of(plan: SeedPlan, indices: Iterable[int]) -> list[tuple[int, list[int]]]:
    """Households grouped by shape, in ``plan.order``."""
    groups: dict[int, list[int]] = {}
    for index in plan.order(indices):
        groups.setdefault(plan.shape(index).number, []).append(index)
    return list(groups.items())


def seed_store(ledger: Ledger, plan: SeedPlan, households: Iterable[int],
               progress: Callable[[SeedReport], None] | None = None,
               check_every: int = CHECK_EVERY_DEFAULT) -> SeedReport:
    """Seed the households with these indices (once per store; see the module docstring)."""
    report, begun = SeedReport(), time.perf_counter()
    employer_ids = open_employers(ledger)
    writer = writer_for(ledger)
    collecting = gc.isenabled()
    gc.disable()  # millions of short-lived tuples: the cyclic collector would only walk them (STYLE)
    households = list(households)
    try:
        writer.start()
        serials, batch = SerialState(ledger), Batch()
        serials.preload({plan.disbursed_on(plan.shape(index)) for index in households})  # serials: that day only
        writer.bulk()
        for _number, indices in shapes_of(plan, households):
            made = time.perf_counter()
            template = build_template(ledger, plan, indices[0], employer_ids[plan.shape(indices[0]).employer],
                                      check=report.templates < CHECKED_SHAPES_MAX)
            report.templates += 1
            report.template_seconds += time.perf_counter() - made
            for index in indices:
                household_rows(ledger, plan, template, index, serials, batch, employer_ids, report, check_every)
                if len(batch.rows) >= BATCH_EVENTS_MAX:
                    flush(writer, batch, report, begun, progress)
            gc.collect(0)
        flush(writer, batch, report, begun, progress)
    finally:
        closed = time.perf_counter()
        writer.close()  # SQLite builds the chain's aggregate index here
        report.write_seconds += time.perf_counter() - closed
        if collecting:
            gc.enable()
    report.head = writer.head.position if writer.head else 0
    report.seconds = time.perf_counter() - begun
    return report


def household_rows(ledger: Ledger, plan: SeedPlan, template: Template, index: int, serials: SerialState,
                   batch: Batch, employer_ids: list[Any], report: SeedReport, check_every: int) -> None:
    """One household's rows into the batch: serials taken in write order, its sequences' rows after it."""
    sequence_rows: list[Any] = []
    taken = [serials.take(day, sequence_rows) for day in template.serial_days]
    rows, snapshots = fill(template, plan, index, taken)
    if check_every and index % check_every == 0 and index != template.index:
        check_household(ledger, plan, index, employer_ids, taken, rows, snapshots)
        report.checked += 1
    batch.rows += rows
    batch.rows += sequence_rows
    batch.snapshots += snapshots
    batch.households += 1


def check_household(ledger: Ledger, plan: SeedPlan, index: int, employer_ids: list[Any], taken: list[str],
                    rows: list[Any], snapshots: list[Any]) -> None:
    """The household lived through the methods itself gives the filled rows, byte for byte."""
    import orjson

    own = build_template(ledger, plan, index, employer_ids[plan.shape(index).employer], check=True)
    own_rows, own_snapshots = fill(own, plan, index, taken)
    for filled, lived in zip(rows, own_rows):
        if filled != lived:
            raise AssertionError(f"household {index}: filled row {filled[:4]} differs from the lived one {lived[:4]}")
    assert len(rows) == len(own_rows), (index, len(rows), len(own_rows))

    def state_of(snapshot: tuple[str, int, str, bytes]) -> Any:
        return snapshot[:3], orjson.loads(snapshot[3])["state"]  # the snapshot's own timestamp is the clock's
    for mine, lived in zip(snapshots, own_snapshots):
        if state_of(mine) != state_of(lived):
            import difflib
            a, b = str(state_of(mine)), str(state_of(lived))
            raise AssertionError(f"household {index}: snapshots differ: " + " | ".join(
                f"{tag} {a[max(0, i1 - 60):i2 + 60]!r} -> {b[max(0, j1 - 60):j2 + 60]!r}" for tag, i1, i2, j1, j2 in
                difflib.SequenceMatcher(None, a, b).get_opcodes() if tag != "equal")[:600])
    assert len(snapshots) == len(own_snapshots), f"household {index}: snapshots"


def flush(writer: Any, batch: Batch, report: SeedReport, begun: float,
          progress: Callable[[SeedReport], None] | None) -> None:
    if not batch.rows:
        return
    written = time.perf_counter()
    writer.write(batch.rows, batch.snapshots)
    report.write_seconds += time.perf_counter() - written
    report.events += len(batch.rows)
    report.snapshots += len(batch.snapshots)
    report.households += batch.households
    report.seconds = time.perf_counter() - begun
    batch.rows, batch.snapshots, batch.households = [], [], 0
    if progress:
        progress(report)


# -- command line ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=10_000)
    parser.add_argument("--db", default=None, help="store URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--history-years", type=int, default=10)
    parser.add_argument("--shapes", type=int, default=SHAPES_DEFAULT)
    parser.add_argument("--check-every", type=int, default=CHECK_EVERY_DEFAULT)
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite store")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last")
    args = parser.parse_args()
    folder = None if args.db else Path(tempfile.mkdtemp(prefix="seed-store-"))
    url = args.db or f"sqlite:///{folder}/seed.sqlite3"
    plan = SeedPlan(history_years=args.history_years, shapes=args.shapes)
    ledger = Ledger(url, clock=FixedClock(datetime(RUN_DAY.year, RUN_DAY.month, RUN_DAY.day, 18, tzinfo=CHINA_TZ)))
    try:
        report = seed_store(ledger, plan, range(args.households), check_every=args.check_every,
                            progress=print_progress)
        print(file=sys.stderr)  # after the progress line
        size = store_bytes(ledger)
        print(f"seeded {report.households:,} households, {report.events:,} events in {report.seconds:.0f}s: "
              f"{report.events_per_s:,.0f} events/s, {report.households_per_s:,.1f} households/s "
              f"(templates {report.templates} in {report.template_seconds:.0f}s, writes {report.write_seconds:.0f}s, "
              f"checked {report.checked}); store {size / 2**30:.2f} GiB")
        if args.json:
            peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(json.dumps({"store": ledger.storage.engine, **report.as_dict(), "store_bytes": size,
                              "peak_rss_mib": round(peak_rss_mib)}))
    finally:
        ledger.close()
        if folder is not None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def print_progress(report: SeedReport) -> None:
    print(f"  {report.households:,} households, {report.events:,} events, {report.events_per_s:,.0f} events/s",
          end="\r", flush=True, file=sys.stderr)


def store_bytes(ledger: Ledger) -> int:
    """The store's size on disk: the SQLite file (and its WAL), or the PostgreSQL schema's relations."""
    if ledger.storage.engine == "sqlite":
        path = Path(ledger.storage.sqlite_path or "")
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with ledger.recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS n FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                       [ledger.recorder.datastore.schema])
        return int(cursor.fetchone()["n"])


if __name__ == "__main__":
    main()
