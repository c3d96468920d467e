"""What runs each day, in order; the scheduler only decides *when* (STYLE: no business rule here).

``run_day(ledger, day)`` is the one daily job: interest falling due and
defaults (LN-7), the yearly repricing on 1 January (LN-2), the yearly interest
settlement after 30 June (INT-1), the offset run for every deduction date
since the last completed one (OFF-4: catch-up lives in the ledger, not in the
scheduler), then the card-debit retries (OFF-3). Every step is idempotent, so
running a day twice, or after a crash, changes nothing more.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Callable

from ledger.aggregates.offset import OffsetRunLog


def _yearly_done(ledger: Any, name: str, key: date) -> bool:
    log = ledger.find(OffsetRunLog.create_id(name))
    return log is not None and log.last_completed is not None and log.last_completed >= key


def _mark_yearly(ledger: Any, name: str, key: date, report: dict[str, Any]) -> None:
    def body():
        log = ledger.find(OffsetRunLog.create_id(name)) or OffsetRunLog(name=name, first_date=key)
        log.complete(run_date=key, report=report)
        return {}, [log]
    ledger.execute(f"job-{name}", f"job:{name}:{key.isoformat()}", {}, body)


def settle_interest_if_due(ledger: Any, day: date) -> dict[str, Any] | None:
    """INT-1: the year ending on the last 30 June is settled once, on or after 1 July."""
    year_end = date(day.year if (day.month, day.day) > (6, 30) else day.year - 1, 6, 30)
    if _yearly_done(ledger, "interest", year_end):
        return None
    report = ledger.settle_interest(year_end)
    _mark_yearly(ledger, "interest", year_end, report)
    return report


def reprice_if_due(ledger: Any, day: date) -> dict[str, Any] | None:
    """LN-2: loans move to the rate in force on 1 January, once a year (also after downtime)."""
    new_year = date(day.year, 1, 1)
    if _yearly_done(ledger, "reprice", new_year):
        return None
    report = ledger.reprice_loans(new_year)
    _mark_yearly(ledger, "reprice", new_year, report)
    return report


def run_day(ledger: Any, day: date, *, loan_update: bool = True,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {"day": day.isoformat()}
    report["reprice"] = reprice_if_due(ledger, day)
    report["interest"] = settle_interest_if_due(ledger, day)
    if loan_update:
        report["loans"] = ledger.daily_loan_update(day)
    report["offset"] = ledger.run_offset(day, progress=progress)
    report["retries"] = ledger.retry_debits(day)
    return report
