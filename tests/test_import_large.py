"""CON-4 at scale: a 100,000-line remittance CSV imports in one command with a progress bar.

Bad lines are reported (line number, field, rule), the good lines are applied exactly once,
and a second import of the same file changes nothing. Runs in a real ``gjj`` subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from benchmarks.remittance_import import DAY, seed, write_csv
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock
from ledger.money import Money

LINES = 100_000
BAD_EVERY = 997


@pytest.mark.slow
def test_hundred_thousand_line_import_reports_bad_lines_and_is_idempotent(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/big.sqlite3"
    ledger = Ledger(url, clock=FixedClock(datetime(2026, 1, 5, 9, tzinfo=CHINA_TZ)))
    people = seed(ledger, LINES)
    ledger.close()
    path = tmp_path / "remittance.csv"
    write_csv(path, people, bad_every=BAD_EVERY)
    bad_lines = [index + 2 for index in range(LINES) if index % BAD_EVERY == 0]  # +1 header, +1 from 1

    env = {**os.environ, "GJJ_DATABASE_URL": url, "COLUMNS": "100"}
    first = subprocess.run([sys.executable, "-m", "ledger.cli", "remit", "import", str(path), "--json"],
                           env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 1, first.stderr[-2000:]  # problems reported -> non-zero exit
    report = json.loads(first.stdout)
    assert "importing" in first.stderr  # the progress bar (on stderr, so --json stays clean)
    assert report["lines_read"] == LINES
    assert [p["line"] for p in report["problems"]] == bad_lines
    assert {(p["field"], p["rule"]) for p in report["problems"]} == {("employer_amount", "MNY-1")}
    assert report["lines_accepted"] == LINES - len(bad_lines)

    second = subprocess.run([sys.executable, "-m", "ledger.cli", "remit", "import", str(path), "--json"],
                            env=env, capture_output=True, text=True, timeout=900)
    again = json.loads(second.stdout)
    assert again["lines_accepted"] == 0
    assert all(d.get("repeat") for d in again["documents"])

    ledger = Ledger(url, clock=FixedClock(datetime(2026, 1, 6, 9, tzinfo=CHINA_TZ)))
    documents = {d["serial"]: d["total"] for d in report["documents"]}
    assert documents == {d["serial"]: d["total"] for d in again["documents"]}
    expected_total = Money("1866.48").times(Decimal(LINES - len(bad_lines)))  # 7,777.00 × 12 % × 2 per line
    assert Money.sum(Money(v) for v in documents.values()) == expected_total
    ledger.close()
