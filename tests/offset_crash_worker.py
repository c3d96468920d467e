"""Runs the monthly offset (OFF-4) for one date against a store; tests/test_offset_crash.py kills it.

Usage: python tests/offset_crash_worker.py URL YYYY-MM-DD [--batch-size N] [--go-file PATH]

Prints ``ready`` once the ledger is open, waits for ``--go-file`` to exist when given (so two
workers start their runs together), runs ``run_offset(day)`` printing ``batch`` after each batch,
and prints the report as JSON.
A smaller batch than the production one gives the test more commit points to land a kill between.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ledger.services.offset as offset_service  # noqa: E402
from ledger.app import Ledger  # noqa: E402
from ledger.application import CHINA_TZ, FixedClock  # noqa: E402

GO_WAIT_SECONDS_MAX = 60
GO_POLL_SECONDS = 0.01


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("day", type=date.fromisoformat)
    parser.add_argument("--batch-size", type=int, default=offset_service.OFFSET_BATCH_SIZE)
    parser.add_argument("--go-file", default=None)
    args = parser.parse_args()
    offset_service.OFFSET_BATCH_SIZE = args.batch_size
    clock = FixedClock(datetime(args.day.year, args.day.month, args.day.day, 18, tzinfo=CHINA_TZ))
    # The tables exist already: several processes creating them at once fail (STACK-NOTES).
    ledger = Ledger(args.url, clock=clock, env={"CREATE_TABLE": "n"})
    print("ready", flush=True)
    if args.go_file:
        deadline = time.monotonic() + GO_WAIT_SECONDS_MAX
        while not Path(args.go_file).exists():
            if time.monotonic() > deadline:
                raise SystemExit("no go signal")
            time.sleep(GO_POLL_SECONDS)
    # one line per committed batch: the test kills the run after a chosen number of them, wherever the
    # machine's speed puts the run's end
    report = ledger.run_offset(args.day, progress=lambda done, total: print("batch", flush=True))
    ledger.close()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
