"""The working-day calendar that moves deductions off holidays (LN-4)."""

from __future__ import annotations

import copy
import pickle
from datetime import date

import pytest

from ledger.calendar import CalendarError, WorkingCalendar


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


def test_national_day_is_not_a_working_day(calendar):
    assert not calendar.is_working_day(date(2025, 10, 1))


def test_make_up_weekend_day_is_a_working_day(calendar):
    # 调休: Sunday 2025-09-28 and Saturday 2025-10-11 are worked for the National Day week.
    assert date(2025, 9, 28).weekday() == 6 and calendar.is_working_day(date(2025, 9, 28))
    assert date(2025, 10, 11).weekday() == 5 and calendar.is_working_day(date(2025, 10, 11))


def test_next_working_day_after_national_day(calendar):
    assert calendar.next_working_day(date(2025, 10, 1)) == date(2025, 10, 9)


def test_next_working_day_of_a_working_day_is_itself(calendar):
    assert calendar.next_working_day(date(2025, 10, 9)) == date(2025, 10, 9)


def test_weekend_moves_to_monday(calendar):
    # The worked loan's first due date, Saturday 2025-02-15.
    assert calendar.next_working_day(date(2025, 2, 15)) == date(2025, 2, 17)


def test_years_beyond_the_package_fall_back_to_monday_to_friday(calendar):
    assert not calendar.covers(2027)
    assert calendar.is_working_day(date(2027, 10, 1))  # a Friday: the package does not know 2027
    assert not calendar.is_working_day(date(2027, 10, 2))
    assert calendar.next_working_day(date(2027, 10, 2)) == date(2027, 10, 4)


def test_policy_adds_holidays_and_workdays_for_uncovered_years():
    extra = WorkingCalendar(
        extra_holidays={date(2027, 10, 1), date(2027, 10, 4)},
        extra_workdays={date(2027, 9, 26)},
    )
    assert not extra.is_working_day(date(2027, 10, 1))
    assert extra.is_working_day(date(2027, 9, 26))  # a Sunday declared working
    assert extra.next_working_day(date(2027, 10, 1)) == date(2027, 10, 5)


def test_a_date_cannot_be_both_holiday_and_workday():
    with pytest.raises(CalendarError):
        WorkingCalendar(extra_holidays={date(2027, 1, 1)}, extra_workdays={date(2027, 1, 1)})


def test_calendar_is_immutable_and_shared_by_copies(calendar):
    with pytest.raises(AttributeError):
        calendar.extra_holidays = frozenset()  # type: ignore[misc]
    assert copy.deepcopy(calendar) is calendar
    restored = pickle.loads(pickle.dumps(WorkingCalendar(extra_holidays={date(2027, 1, 1)})))
    assert not restored.is_working_day(date(2027, 1, 1))
