"""Dates written as text at the entry points (CLI options, HTTP queries and bodies, bank fields).

A business date is ``YYYY-MM-DD`` and a bank's 主机日期 ``YYYYMMDD``, in ASCII digits, naming a real
day between :data:`DATE_MIN` and :data:`DATE_MAX`: the ledger's date arithmetic (due dates, penalty
products, "as of" replays) adds days and months to what it is given, so a date at the edge of the
calendar (9999-12-31) is refused here rather than overflowing later (issue 16). Whether a value date
may be used at all (not after its recording, at most k ⚙ days before it) stays with
``LedgerBase.check_value_date`` (MNY-4); this module only reads the text.
"""

from __future__ import annotations

import re
from datetime import date

from ledger.aggregates.errors import ValueDateError

DATE_MIN = date(1900, 1, 1)
DATE_MAX = date(2999, 12, 31)
_ISO_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_HOST_DAY = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})", re.ASCII)


class DateInputError(ValueDateError):
    """A date that is not a real day in the accepted range; names the field (MNY-4 unless told)."""


def check_date_range(day: date, field: str) -> date:
    """``day`` if between DATE_MIN and DATE_MAX, else refused naming ``field``."""
    if not DATE_MIN <= day <= DATE_MAX:
        raise DateInputError(f"{day} is outside {DATE_MIN}..{DATE_MAX}", field=field)
    return day


def _day(pattern: re.Pattern[str], text: object, field: str, shape: str, rule: str) -> date:
    match = pattern.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise DateInputError(f"a date is {shape} (got {str(text)[:20]!r})", field=field, rule=rule)
    try:
        day = date(*(int(part) for part in match.groups()))
    except ValueError:
        raise DateInputError(f"{text} is not a day of the calendar", field=field, rule=rule) from None
    return check_date_range(day, field)


def parse_date(text: object, field: str) -> date:
    """A business date ``YYYY-MM-DD`` (value dates, as-of dates, periods' days)."""
    return _day(_ISO_DAY, text, field, "YYYY-MM-DD", "MNY-4")


def parse_host_date(text: object, field: str = "host_date") -> date:
    """A bank's 主机日期 ``YYYYMMDD`` (BNK-2)."""
    return _day(_HOST_DAY, text, field, "YYYYMMDD", "BNK-2")
