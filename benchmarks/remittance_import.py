"""Benchmark: seed N members, import an N-line remittance CSV (CON-4), re-import it; print figures.

Usage: python benchmarks/remittance_import.py --lines 100000 [--db URL] [--profile] [--snapshots] [--json]

Prints beside the import figure the raw append rate of the same store in the same run (without the audit
chain and with it, ``benchmarks.common.raw_append_rates``), the ratio to it, the load average and the peak
RSS; with ``--json`` one JSON object as the last line. ``--profile`` cProfiles the first import.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import csv
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, load_average, peak_rss_mib, raw_append_rates  # noqa: E402
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock
from ledger.sampledata import credit_code, resident_id
from ledger.services.accounts import derive_account_no

EMPLOYERS = 50
DAY = date(2026, 1, 5)


def seed(ledger: Ledger, lines: int) -> list[tuple[str, str]]:
    employers = [credit_code(5000 + i) for i in range(EMPLOYERS)]
    for code in employers:
        ledger.open_employer(code, f"单位{code[-4:]}", "6222000000000000", DAY, ratio="12")
    rows, people = [], []
    for index in range(lines):
        number = resident_id(date(1970 + index % 30, 1 + index % 12, 1 + index % 28), index // 360, male=index % 2 == 0)
        rows.append({"id_number": number, "name": f"成员{index}", "employer": employers[index % EMPLOYERS],
                     "base": "7777.00", "from_period": "2026-01"})
    ledger.open_members_bulk(rows, DAY)
    for row in rows:
        people.append((row["employer"], derive_account_no(row["id_number"])))
    return people


def snapshot_accounts(ledger: Ledger, people: list[tuple[str, str]], batch: int = 1000) -> None:
    """A snapshot of every account (the import then reads one snapshot an account, not its events)."""
    from ledger.aggregates.fund_account import FundAccount

    for start in range(0, len(people), batch):
        loaded = ledger.load_many(FundAccount.create_id(no) for _code, no in people[start:start + batch])
        ledger.write_snapshots(list(loaded.values()))


def write_csv(path: Path, people: list[tuple[str, str]], bad_every: int = 0) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["employer", "period", "kind", "document_number", "account_no", "base", "employer_amount",
                         "employee_amount"])
        for index, (employer, account_no) in enumerate(people):
            amount = "933.24" if not bad_every or index % bad_every else "933.2x"
            writer.writerow([employer, "2026-01", "remittance", "HJ202601", account_no, "7777.00", amount, "933.24"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--db", default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last line")
    parser.add_argument("--profile", action="store_true", help="cProfile the first import and print the top entries")
    parser.add_argument("--snapshots", action="store_true",
                        help="give every account a snapshot before the import (as accounts with years of history have)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    url = args.db or f"sqlite:///{folder}/bench.sqlite3"
    clock = FixedClock(datetime(2026, 1, 5, 9, tzinfo=CHINA_TZ))
    ledger = Ledger(url, clock=clock)
    started = time.perf_counter()
    people = seed(ledger, args.lines)
    if args.snapshots:
        snapshot_accounts(ledger, people)
    seeded = time.perf_counter() - started
    path = folder / "remittance.csv"
    write_csv(path, people, bad_every=1000)
    load_before = load_average()
    profiler = cProfile.Profile() if args.profile else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    report = ledger.import_remittances(path, DAY)
    if profiler:
        profiler.disable()
    first, first_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
    started = time.perf_counter()
    again = ledger.import_remittances(path, DAY)
    second = time.perf_counter() - started
    print(f"engine={ledger.storage.engine} lines={args.lines} seed={seeded:.1f}s "
          f"import={first:.1f}s ({args.lines / first:,.0f} lines/s) accepted={report['lines_accepted']} "
          f"problems={len(report['problems'])} reimport={second:.1f}s accepted_again={again['lines_accepted']}")
    raw = raw_append_rates(ledger, min(args.lines, 20_000))
    emit({"store": ledger.storage.engine, "n": args.lines, "lines_per_s": args.lines / first,
          "reimport_lines_per_s": args.lines / second, "accepted": report["lines_accepted"],
          "problems": len(report["problems"]), "import_s": first, "import_cpu_s": first_cpu,
          "lines_per_cpu_s": args.lines / first_cpu, "snapshots": args.snapshots, "seed_s": seeded,
          "ratio": args.lines / first / raw["raw_events_per_s"], "peak_rss_mib": peak_rss_mib(),
          "load_average_before": load_before, **raw, "load_average": load_average(),
          "profiled": bool(profiler)}, args.json)
    ledger.close()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
