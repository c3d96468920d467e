"""The daily loan job looks only at the loans with something due that day (ledger.services.loan_days).

Two copies of one store of loans disbursed on many days of the month, some paid on time and some never:
on one the job looks at every loan every day (as it did before), on the other at the loans its run log
says have something due or to decide since its last run. Run day after day across two months (a miss
decided, a default raised, interest falling due on every due day, a weekend), both record the same
interest recognitions and the same LoanDefaulted events, loan for loan; and a reversal or a waiver makes
the next run look at what it touched (or at every loan).
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import ledger.services.loan_days as loan_days
from benchmarks.loan_daily import seed_loans, seed_members
from ledger.aggregates.loan import Loan
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock, topic_of

LOANS = 60
FIRST_DAY = date(2025, 3, 1)
DAYS = 62


def events_of(ledger: Ledger, name: str) -> Counter:
    return Counter((str(e.originator_id), getattr(e, "through", None) or getattr(e, "on", None))
                   for e in ledger.iter_events(topics=[topic_of(Loan, name)]))


@pytest.fixture
def twin_stores(tmp_path: Path) -> tuple[str, str]:
    first = tmp_path / "all.sqlite3"
    clock = FixedClock(datetime(2025, 1, 26, 9, tzinfo=CHINA_TZ))
    ledger = Ledger(f"sqlite:///{first}", clock=clock)
    with ledger.audit_bulk_load():
        numbers = seed_members(ledger, LOANS)
        clock.set_day(date(2025, 2, 20), hour=7)
        seed_loans(ledger, clock, numbers, 7)
    ledger.close()
    second = tmp_path / "due.sqlite3"
    shutil.copy(first, second)
    shutil.copy(f"{first}.snapshot-key", f"{second}.snapshot-key")
    return f"sqlite:///{first}", f"sqlite:///{second}"


def run_days(url: str, monkeypatch: pytest.MonkeyPatch, every_loan: bool) -> tuple[Counter, Counter, Counter]:
    clock = FixedClock(datetime(2025, 2, 28, 20, tzinfo=CHINA_TZ))
    ledger = Ledger(url, clock=clock)
    looked: Counter = Counter()
    try:
        with monkeypatch.context() as patch:
            if every_loan:
                patch.setattr(loan_days, "loans_to_look_at", lambda *args: None)
            for offset in range(DAYS):
                day = FIRST_DAY + timedelta(days=offset)
                clock.set_day(day, hour=20)
                looked[ledger.daily_loan_update(day)["looked_at"]] += 1
        return events_of(ledger, "InstalmentsFellDue"), events_of(ledger, "Defaulted"), looked
    finally:
        ledger.close()


def test_looking_at_the_loans_due_decides_what_looking_at_all_of_them_does(twin_stores: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    every, due = twin_stores
    accrued_all, defaulted_all, looked_all = run_days(every, monkeypatch, every_loan=True)
    accrued_due, defaulted_due, looked_due = run_days(due, monkeypatch, every_loan=False)
    assert accrued_all and defaulted_all, "the two months decide something"
    assert accrued_due == accrued_all
    assert defaulted_due == defaulted_all
    assert looked_all == {"all": DAYS}
    assert looked_due["due"] >= DAYS - 1 and looked_due["all"] <= 1  # only the first run looks at all


def test_the_window_is_the_due_days_and_the_misses_decided_since_the_last_run() -> None:
    from ledger.calendar import WorkingCalendar

    dates = loan_days.decision_dates(date(2025, 3, 14), date(2025, 3, 17), WorkingCalendar(), 0)
    days = loan_days.due_days_of(dates)
    assert {15, 16, 17} <= days  # due on Sat 15, Sun 16 (moved to Mon 17), Mon 17
    assert 14 in days  # due Fri 14, on time until Fri 14: its miss is decided on Sat 15
    assert 10 not in days and 20 not in days
    assert loan_days.due_days_of([date(2025, 2, 28)]) >= {28, 29, 30, 31}  # month ends clamp later due days
