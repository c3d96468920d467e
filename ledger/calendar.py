"""Working-day calendar of mainland China for moving deductions (LN-4).

A deduction that falls on a non-working day moves to the next working day, and a
payment on that day is on time. Holidays and 调休 make-up workdays (weekend days
declared working) come from the ``chinesecalendar`` package for the years it
covers (2004-2026 in 1.11); for other years the calendar falls back to Monday to
Friday. A dated policy file adds what the package does not know (or corrects it)
through ``extra_holidays`` and ``extra_workdays``, which win over everything else.
The calendar is immutable, so copies of loan books can share it.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Iterable

import chinese_calendar

# The longest run of non-working days in China is the Spring Festival / National Day
# week plus weekends (about 9-10 days); a search beyond this is a data error.
NON_WORKING_RUN_DAYS_MAX = 31
SATURDAY = 5


class CalendarError(ValueError):
    """LN-4: the calendar cannot answer (bad data: no working day within the search limit)."""

    rule = "LN-4"


@lru_cache(maxsize=1)
def _library_years() -> tuple[int, int]:
    years = [day.year for day in chinese_calendar.holidays]
    return min(years), max(years)


NEXT_WORKING_DAY_CACHE_MAX = 200_000
_NEXT_WORKING_DAY: dict[tuple[frozenset, frozenset, date], date] = {}  # pure function of its key


class WorkingCalendar:
    """Answers whether a date is a working day and which working day comes next."""

    __slots__ = ("extra_holidays", "extra_workdays", "library_years")
    extra_holidays: frozenset[date]
    extra_workdays: frozenset[date]
    library_years: tuple[int, int]

    def __init__(
        self,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
    ):
        holidays = frozenset(extra_holidays)
        workdays = frozenset(extra_workdays)
        both = holidays & workdays
        if both:
            raise CalendarError(f"dates both holiday and workday: {sorted(both)}")
        object.__setattr__(self, "extra_holidays", holidays)
        object.__setattr__(self, "extra_workdays", workdays)
        object.__setattr__(self, "library_years", _library_years())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("WorkingCalendar is immutable")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, WorkingCalendar) and self.extra_holidays == other.extra_holidays
                and self.extra_workdays == other.extra_workdays)

    def __hash__(self) -> int:
        return hash((self.extra_holidays, self.extra_workdays))

    def __deepcopy__(self, memo: dict[int, Any]) -> "WorkingCalendar":
        return self

    def __copy__(self) -> "WorkingCalendar":
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (WorkingCalendar, (sorted(self.extra_holidays), sorted(self.extra_workdays)))

    def covers(self, year: int) -> bool:
        """Whether the package holds the official holiday notice for ``year``."""
        first, last = self.library_years
        return first <= year <= last

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        if self.covers(day.year):
            return bool(chinese_calendar.is_workday(day))
        return day.weekday() < SATURDAY

    def next_working_day(self, day: date) -> date:
        """``day`` itself if it is a working day, else the first working day after it."""
        key = (self.extra_holidays, self.extra_workdays, day)
        known = _NEXT_WORKING_DAY.get(key)
        if known is None:
            known = self._next_working_day(day)
            if len(_NEXT_WORKING_DAY) >= NEXT_WORKING_DAY_CACHE_MAX:
                _NEXT_WORKING_DAY.clear()
            _NEXT_WORKING_DAY[key] = known
        return known

    def _next_working_day(self, day: date) -> date:
        candidate = day
        for _ in range(NON_WORKING_RUN_DAYS_MAX + 1):
            if self.is_working_day(candidate):
                return candidate
            candidate += timedelta(days=1)
        raise CalendarError(f"no working day within {NON_WORKING_RUN_DAYS_MAX} days of {day}")
