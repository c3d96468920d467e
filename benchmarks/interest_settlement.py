"""Benchmark: the year-end interest settlement (结息, INT-1) over a seeded store; accounts/s.

Seeds ``--loans`` households as ``benchmarks/offset_run.py`` does (fund accounts with ``--history-years`` of
monthly contributions settled every 30 June before the last, loans in repayment), moves the clock to the
first days of July and settles the year that ended on 30 June for every account: each account is loaded
from its snapshot, its year's product computed (INT-1) and its interest posted, a batch per transaction.
Prints accounts/s beside the store's raw append rate in the same run (without and with the audit chain),
the load average and the peak RSS; ``--json`` adds one JSON object as the last line.

Usage: python benchmarks/interest_settlement.py --loans 10000 [--db URL] [--history-years 10] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    emit, load_average, machine_busy, machine_ticks, peak_rss_mib, process_cpu_seconds, raw_append_rates, rss_mib)
from benchmarks.offset_run import RUN_DAY, notification_count, open_store, seed_apart  # noqa: E402
from ledger.app import Ledger  # noqa: E402
from ledger.application import CHINA_TZ, FixedClock  # noqa: E402

YEAR_END = date(RUN_DAY.year, 6, 30)  # the year the seeded run day falls in ends on this 30 June
SETTLED_ON = date(RUN_DAY.year, 7, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--db", default=None)
    parser.add_argument("--history-years", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last line")
    parser.add_argument("--profile", action="store_true", help="cProfile the settlement and print the top entries")
    args = parser.parse_args()
    url, drop = open_store(args.db)
    clock = FixedClock(datetime(RUN_DAY.year, RUN_DAY.month, RUN_DAY.day, 18, tzinfo=CHINA_TZ))
    ledger = None
    try:
        seeded = seed_apart(url, args.loans, args.history_years)  # its own process: the run's RSS is the run's
        print(f"seeded {args.loans:,} households in {seeded['seconds']:.0f}s", flush=True)
        ledger = Ledger(url, clock=clock)
        clock.set_day(SETTLED_ON, hour=9)
        accounts = len(ledger.account_ids())
        load_before = load_average()
        rss_before = rss_mib()
        stored = notification_count(ledger)
        profiler = cProfile.Profile() if args.profile else None
        begun, cpu, ticks = time.perf_counter(), process_cpu_seconds(), machine_ticks()
        if profiler:
            profiler.enable()
        result = ledger.settle_interest(YEAR_END)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - begun
        cpu, machine = process_cpu_seconds() - cpu, machine_busy(ticks, machine_ticks())
        peak = peak_rss_mib()
        written = notification_count(ledger) - stored
        again_begun = time.perf_counter()
        again = ledger.settle_interest(YEAR_END)
        again_elapsed = time.perf_counter() - again_begun
        assert again["settled"] == 0, again
        print(f"settle_interest({YEAR_END}): {accounts:,} accounts in {elapsed:.1f}s = {accounts / elapsed:,.0f} "
              f"accounts/s; settled {result['settled']:,}, interest {result['interest']}; a second run settles "
              f"nothing ({accounts / again_elapsed:,.0f} accounts/s)", flush=True)
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        raw = raw_append_rates(ledger, min(accounts, 20_000))
        events_per_s = written / elapsed
        print(f"{written:,} events = {events_per_s:,.0f} events/s; raw append {raw['raw_events_per_s']:,.0f} events/s "
              f"({raw['raw_chained_events_per_s']:,.0f} chained): ratio {events_per_s / raw['raw_events_per_s']:.2f}; "
              f"peak rss {peak:.0f} MiB (start {rss_before:.0f}); {cpu:.1f} CPU s in this process, the machine's "
              f"{machine['machine_cores']} cores {machine['machine_busy']:.0%} busy", flush=True)
        emit({"store": ledger.storage.engine, "n": accounts, "accounts_per_s": accounts / elapsed,
              "settled": result["settled"], "rerun_accounts_per_s": accounts / again_elapsed,
              "peak_rss_mib": peak, "rss_start_mib": rss_before, "load_average_before": load_before,
              "events_per_s": events_per_s, "cpu_seconds": cpu, **machine, "ratio": events_per_s / raw["raw_events_per_s"],
              **raw, "load_average": load_average()}, args.json)
    finally:
        if ledger is not None:
            ledger.close()
        drop()


if __name__ == "__main__":
    main()
