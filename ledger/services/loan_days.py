"""Which loans the daily loan job must look at on a day (LN-7, issue 14: the daily job at the store's speed).

The job recognises the interest of instalments falling due (Dr 1102 / Cr 4001) and raises LoanDefaulted
when a missed instalment makes the count (LN-7). Both happen on known days: interest on the due date, a
miss on the day after the instalment's on-time date (its deduction moved to the next working day, plus
grace). So after a completed run on day L, a run on day D needs only the loans whose due day of the month
(LN-4, month ends clamped) belongs to a due date ``d`` with ``L < d <= D`` or ``L < on_time(d) + 1 <= D``,
and the loans whose payments were reversed since L (COR-3 may reopen an instalment long past). Every
other active loan has nothing due and nothing to decide that day. The job looks at every loan when it
has no completed run, when it runs again on or before L, when more than ``WINDOW_DAYS_MAX`` days passed,
or when a waiver was declared since L (LN-8: a waiver's end decides misses of many loans at once).

The due day of each loan comes from its disbursement event (``terms.due_day`` or the day of the month it
was disbursed), read through the events' topic index and kept per process.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Iterable
from uuid import UUID

from ledger.calendar import WorkingCalendar

WINDOW_DAYS_MAX = 20  # beyond this the window covers most due days anyway: every loan is looked at
LOOKBACK_DAYS_MAX = 45  # on-time date after a due date: next working day (holiday runs) plus grace


def decision_dates(last: date, on: date, calendar: WorkingCalendar, grace_days_max: int) -> list[date]:
    """Due dates whose interest falls due, or whose miss is decided, in (last, on]."""
    found = []
    for back in range(LOOKBACK_DAYS_MAX, -1, -1):
        due = on - timedelta(days=back)
        decided = calendar.next_working_day(due) + timedelta(days=grace_days_max + 1)
        if last < due <= on or last < decided <= on:
            found.append(due)
    return found


def due_days_of(dates: Iterable[date]) -> set[int]:
    """Days of the month a loan's due day may have (LN-4: a due day past a month's end falls on its last)."""
    days: set[int] = set()
    for due in dates:
        days.add(due.day)
        month_end = (due.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        if due == month_end:
            days.update(range(due.day + 1, 32))
    return days


def loan_due_days(ledger: Any) -> dict[UUID, int]:
    """Each disbursed loan's due day of the month (from its Disbursed event; kept and extended per process)."""
    from ledger.aggregates.loan import Loan
    from ledger.application import topic_of

    cache = ledger.__dict__.setdefault("_loan_due_days", [0, {}])
    for notification in ledger.iter_notifications(topics=[topic_of(Loan, "Disbursed")], start=cache[0] + 1):
        event = ledger.mapper.to_domain_event(notification)
        terms = event.terms or {}
        cache[1][event.originator_id] = terms.get("due_day") or event.value_date.day
        cache[0] = notification.id
    return cache[1]


def changed_since(ledger: Any, position: int, event_name: str) -> set[UUID]:
    """Loans with an event of this name stored after ``position``."""
    from ledger.aggregates.loan import Loan
    from ledger.application import topic_of

    return {n.originator_id for n in ledger.iter_notifications(topics=[topic_of(Loan, event_name)],
                                                                start=position + 1)}


def loans_to_look_at(ledger: Any, on: date, last: date | None, position: int | None) -> list[UUID] | None:
    """The loans the daily job must look at on ``on`` after a run completed on ``last`` (stored events then up
    to ``position``); None: every loan."""
    if last is None or position is None or on <= last or (on - last).days > WINDOW_DAYS_MAX:
        return None
    if changed_since(ledger, position, "Waived"):
        return None
    grace_max = max(version.loan.grace_days for version in ledger.policy.versions)
    days = due_days_of(decision_dates(last, on, ledger.calendar, grace_max))
    chosen = {loan_id for loan_id, day in loan_due_days(ledger).items() if day in days}
    return sorted(chosen | changed_since(ledger, position, "PaymentReversed"), key=str)
