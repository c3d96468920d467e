"""Pure loan arithmetic (个人住房公积金贷款): schedules, day counts, prepayment interest, penalty.

Everything here is a function of its arguments: no I/O, no clock, no event
store. Schedules follow LN-3 (等额本息 equal instalment, 等额本金 equal
principal) with due dates per LN-4; rebuilding the rest of a schedule after a
rate change (LN-2) or a prepayment (LN-6) keeps the original numbering and
due dates. Penalty interest (罚息, LN-7) is a product of overdue amounts and
days, rounded only when crystallised. All arithmetic is exact Decimal in a
local context; money is rounded only through :func:`ledger.money.round_fen`
(via :meth:`Money.of`).
"""

from __future__ import annotations

import calendar as _gregorian
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Sequence

from ledger.rules import LedgerRuleError
from ledger.money import ZERO, Money, MoneyError, parse_rate

EQUAL_INSTALMENT = "equal-instalment"
EQUAL_PRINCIPAL = "equal-principal"
METHODS = (EQUAL_INSTALMENT, EQUAL_PRINCIPAL)
DAY_COUNT_ACTUAL = "actual"
DAY_COUNT_30_360 = "30/360"
DAY_COUNTS = (DAY_COUNT_ACTUAL, DAY_COUNT_30_360)

TERM_MONTHS_MAX = 360  # LN-1: term <= 360 months; also bounds every schedule loop
ANNUAL_RATE_MAX = Decimal("10")  # LN-1: accepted rates 0 < r <= 10 %
GRACE_DAYS_MAX = 31
PENALTY_MULTIPLIER_DEFAULT = Decimal("1.5")
DECIMAL_PRECISION = 50  # enough for (1 + r) ** 360 and products of yuan x days x rate
MONTHS_PER_YEAR = 12
DAYS_PER_YEAR = 360  # MNY-3: daily = annual / 360
PERCENT = Decimal("100")


class LoanRuleError(LedgerRuleError, ValueError):
    """Base of every loan-rule refusal; ``rule`` is the SPEC id, ``field`` the input."""

    rule = "LN"


class ScheduleError(LoanRuleError):
    """LN-3/LN-4: a schedule cannot be built from these terms."""

    rule = "LN-3"


class DayCountError(LoanRuleError):
    """MNY-3: an unknown day count or dates in the wrong order."""

    rule = "MNY-3"


class PrepaymentNotAllowed(LoanRuleError):
    """LN-6: the prepayment breaks one of its conditions."""

    rule = "LN-6"


@dataclass(frozen=True)
class Instalment:
    """One row of a schedule; ``outstanding`` is the principal left after it is paid."""

    number: int
    due_on: date
    principal: Money
    interest: Money
    payment: Money
    outstanding: Money


@dataclass(frozen=True)
class DateRange:
    """Days ``start_on`` .. ``end_on``, both included."""

    start_on: date
    end_on: date

    def __post_init__(self) -> None:
        if self.end_on < self.start_on:
            raise LoanRuleError("a date range ends before it starts", field="end_on", rule="LN-8")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start_on <= day <= self.end_on


# -- rates, dates and day counts ----------------------------------------------


def check_rate(annual_rate: Decimal, field: str = "annual_rate") -> Decimal:
    """A percent rate, 0 < r <= 10 (LN-1); floats refused (MNY-3)."""
    try:
        return parse_rate(annual_rate, field, maximum=ANNUAL_RATE_MAX)
    except MoneyError as exc:
        raise ScheduleError(str(exc), field=field, rule="MNY-3") from None


def monthly_interest(outstanding: Money, annual_rate: Decimal) -> Money:
    """round(outstanding x annual / 12): one division, so the half-up rounding is exact."""
    with localcontext() as context:
        context.prec = DECIMAL_PRECISION
        return Money.of(outstanding.amount * annual_rate / (PERCENT * MONTHS_PER_YEAR))


def add_months(day: date, months: int, day_of_month: int) -> date:
    """The ``day_of_month`` of the month ``months`` after ``day``'s, clamped to its last day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    if day_of_month <= 28:  # every month has it: the common case, no calendar lookup
        return date(year, month, day_of_month)
    last_day = _gregorian.monthrange(year, month)[1]
    return date(year, month, min(day_of_month, last_day))


def due_date(disbursed_on: date, number: int, due_day: int | None = None) -> date:
    """LN-4: instalment ``number`` is due in the number-th month after disbursement."""
    if number < 1:
        raise ScheduleError(f"instalment numbers start at 1, got {number}", field="number")
    day_of_month = disbursed_on.day if due_day is None else due_day
    if not 1 <= day_of_month <= 31:
        raise ScheduleError(f"a due day lies in 1..31, got {day_of_month}", field="due_day", rule="LN-4")
    return add_months(disbursed_on, number, day_of_month)


def period_start(disbursed_on: date, number: int, due_day: int | None = None) -> date:
    """The first day of instalment ``number``'s period: the previous due date (or disbursement)."""
    return disbursed_on if number == 1 else due_date(disbursed_on, number - 1, due_day)


def first_period_starting_on_or_after(
    disbursed_on: date, effective_on: date, due_day: int | None = None
) -> int:
    """LN-2: the number of the first instalment whose period starts on or after ``effective_on``."""
    for number in range(1, TERM_MONTHS_MAX + 2):
        if period_start(disbursed_on, number, due_day) >= effective_on:
            return number
    raise ScheduleError(f"no instalment period starts on or after {effective_on}", rule="LN-2")


def first_due_after(disbursed_on: date, after_on: date, due_day: int | None = None) -> int:
    """The number of the first instalment due strictly after ``after_on``."""
    for number in range(1, TERM_MONTHS_MAX + 2):
        if due_date(disbursed_on, number, due_day) > after_on:
            return number
    raise ScheduleError(f"no instalment is due after {after_on}", rule="LN-4")


def _check_day_count(day_count: str) -> None:
    if day_count not in DAY_COUNTS:
        raise DayCountError(f"day count must be one of {DAY_COUNTS}, got {day_count!r}", field="day_count")


def days_between(start_on: date, end_on: date, day_count: str = DAY_COUNT_ACTUAL) -> int:
    """Days from ``start_on`` to ``end_on`` (MNY-3): actual, or 30/360 with day of month capped at 30."""
    _check_day_count(day_count)
    if end_on < start_on:
        raise DayCountError(f"{end_on} is before {start_on}", field="end_on")
    if day_count == DAY_COUNT_ACTUAL:
        return (end_on - start_on).days
    return (
        DAYS_PER_YEAR * (end_on.year - start_on.year)
        + 30 * (end_on.month - start_on.month)
        + min(end_on.day, 30)
        - min(start_on.day, 30)
    )


def interest_for_days(
    principal: Money, annual_rate: Decimal, start_on: date, end_on: date, day_count: str = DAY_COUNT_ACTUAL
) -> Money:
    """LN-6: principal x rate x days / 360, days from ``start_on`` to ``end_on``."""
    days = days_between(start_on, end_on, day_count)
    with localcontext() as context:
        context.prec = DECIMAL_PRECISION
        return Money.of(principal.amount * annual_rate * days / (PERCENT * DAYS_PER_YEAR))


prepayment_interest = interest_for_days


# -- schedules ------------------------------------------------------------------


def monthly_payment(principal: Money, months: int, annual_rate: Decimal) -> Money:
    """LN-3 equal instalment: M = P r (1+r)^n / ((1+r)^n - 1), r = annual / 12, rounded to the fen."""
    _check_terms(principal, months)
    annual_rate = check_rate(annual_rate)
    with localcontext() as context:
        context.prec = DECIMAL_PRECISION
        monthly_rate = annual_rate / (PERCENT * MONTHS_PER_YEAR)
        growth = (1 + monthly_rate) ** months
        return Money.of(principal.amount * monthly_rate * growth / (growth - 1))


def _check_terms(principal: Money, months: int) -> None:
    if not isinstance(principal, Money) or principal.amount <= 0:
        raise ScheduleError(f"the principal must be a positive Money, got {principal!r}", field="principal")
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= TERM_MONTHS_MAX:
        raise ScheduleError(f"months must lie in 1..{TERM_MONTHS_MAX}, got {months!r}", field="months")


def _fen(money: Money) -> int:
    """A Money as an integer number of fen (exact: Money always has two places)."""
    return int(money.amount.scaleb(2))


def _interest_ratio(annual_rate: Decimal) -> tuple[int, int]:
    """annual % / 12 as an exact fraction: interest in fen = outstanding in fen x num / den."""
    numerator, denominator = annual_rate.as_integer_ratio()
    return numerator, denominator * int(PERCENT) * MONTHS_PER_YEAR


def _amortise(
    principal: Money, months: int, annual_rate: Decimal, *, payment: Money | None, principal_part: Money | None
) -> list[tuple[int, int]]:
    """(principal, interest) in fen, month by month; the last month (or the month that clears
    the principal early, which rounding can cause on tiny loans) repays the whole rest.

    Integer arithmetic in fen: each month's interest is round(outstanding x annual / 12) half up,
    computed exactly on the fraction (the same figure as :func:`monthly_interest`, which the
    tests check for any principal, term and rate), so a 360-month schedule costs no Decimal work.
    """
    numerator, denominator = _interest_ratio(annual_rate)
    outstanding = _fen(principal)
    kept = _fen(payment) if payment is not None else None
    part_fixed = _fen(principal_part) if principal_part is not None else 0
    rows: list[tuple[int, int]] = []
    last = months - 1
    for index in range(months):
        quotient, remainder = divmod(outstanding * numerator, denominator)
        interest = quotient + 1 if 2 * remainder >= denominator else quotient  # half up, never negative
        if index == last:
            part = outstanding
        elif kept is not None:
            part = min(kept - interest, outstanding)
        else:
            part = min(part_fixed, outstanding)
        if part < 0:
            raise ScheduleError(f"the payment {payment} does not cover the interest {Money.from_fen(interest)}")
        outstanding -= part
        rows.append((part, interest))
        if outstanding == 0:
            break
    return rows


@lru_cache(maxsize=4096)
def due_dates(disbursed_on: date, first_number: int, count: int, due_day: int | None = None) -> tuple[date, ...]:
    """LN-4 due dates of instalments ``first_number`` .. ``first_number + count - 1`` (shared by loans
    disbursed on the same day)."""
    return tuple(due_date(disbursed_on, number, due_day) for number in range(first_number, first_number + count))


@dataclass(frozen=True)
class CompactSchedule:
    """A schedule as integer rows: (principal, interest) in fen per instalment from ``first_number``,
    with the due dates. :meth:`instalments` makes the :class:`Instalment` rows; a loan book keeps
    the rows it has not needed yet in this form (a 360-month book need not build 360 objects)."""

    first_number: int
    principal: int  # fen: the sum of the rows' principal parts
    rows: tuple[tuple[int, int], ...]
    dates: tuple[date, ...]

    def __post_init__(self) -> None:
        _check_rows(self.rows, self.principal)
        assert len(self.dates) == len(self.rows), "one due date per row"

    def instalments(self, start: int = 0, stop: int | None = None, outstanding: int | None = None) -> list[Instalment]:
        """Rows ``start`` .. ``stop`` as Instalments; ``outstanding`` is the principal left before row
        ``start`` (computed when not given)."""
        rows, stop = self.rows, len(self.rows) if stop is None else stop
        if outstanding is None:
            outstanding = self.principal - sum(part for part, _ in rows[:start])
        from_fen, instalments = Money.from_fen, []
        payments: dict[int, Money] = {}  # equal instalment: one payment for (nearly) every row
        for index in range(start, stop):
            part, interest = rows[index]
            outstanding -= part
            payment = payments.get(part + interest)
            if payment is None:
                payment = payments[part + interest] = from_fen(part + interest)
            instalments.append(Instalment(self.first_number + index, self.dates[index], from_fen(part),
                                          from_fen(interest), payment, from_fen(outstanding)))
        return instalments


def _compact(
    rows: list[tuple[int, int]], principal: Money, disbursed_on: date, first_number: int, due_day: int | None
) -> CompactSchedule:
    return CompactSchedule(first_number, _fen(principal), tuple(rows),
                           due_dates(disbursed_on, first_number, len(rows), due_day))


def _check_rows(rows: list[tuple[int, int]], principal: int) -> None:
    """The LN-3 invariants on the fen rows (see :func:`check_schedule`); a failure is a bug."""
    assert rows, "a schedule has at least one instalment"
    parts, interests = zip(*rows)
    assert sum(parts) == principal, "principal parts sum to the principal: ends at 0.00"
    assert min(parts) >= 0 and min(interests) >= 0, "payment covers interest, never rises"


def check_schedule(instalments: Sequence[Instalment], principal: Money) -> None:
    """The LN-3 invariants; a schedule that breaks them is a bug, so this stops the ledger."""
    assert instalments, "a schedule has at least one instalment"
    assert Money.sum(i.principal for i in instalments) == principal, "principal parts sum to the principal"
    assert instalments[-1].outstanding.is_zero, "every schedule ends at exactly 0.00"
    previous = principal
    for instalment in instalments:
        assert instalment.payment == instalment.principal + instalment.interest
        assert not instalment.principal.is_negative and instalment.payment >= instalment.interest
        assert instalment.outstanding <= previous, "outstanding never rises"
        previous = instalment.outstanding


def _resolve_first_number(
    disbursed_on: date, first_number: int, due_day: int | None, start_after: date | None
) -> int:
    if start_after is not None:
        first_number = max(first_number, first_due_after(disbursed_on, start_after, due_day))
    if not 1 <= first_number <= TERM_MONTHS_MAX:
        raise ScheduleError(f"first_number must lie in 1..{TERM_MONTHS_MAX}, got {first_number}", field="first_number")
    return first_number


def build_schedule(
    principal: Money,
    months: int,
    annual_rate: Decimal,
    method: str,
    disbursed_on: date,
    *,
    first_number: int = 1,
    due_day: int | None = None,
    start_after: date | None = None,
) -> list[Instalment]:
    """LN-3 schedule of ``months`` instalments numbered from ``first_number``.

    To rebuild the rest of a loan (LN-2 repricing, LN-6 reduce-payment) pass the
    outstanding principal, the months left and the number of the first instalment
    to rebuild: due dates stay those of the original loan. ``start_after`` starts the
    numbering at the first instalment due after that date (never before ``first_number``).
    """
    return compact_schedule(principal, months, annual_rate, method, disbursed_on, first_number=first_number,
                            due_day=due_day, start_after=start_after).instalments()


def compact_schedule(
    principal: Money,
    months: int,
    annual_rate: Decimal,
    method: str,
    disbursed_on: date,
    *,
    first_number: int = 1,
    due_day: int | None = None,
    start_after: date | None = None,
) -> CompactSchedule:
    """:func:`build_schedule` as integer rows (:class:`CompactSchedule`)."""
    _check_terms(principal, months)
    annual_rate = check_rate(annual_rate)
    first_number = _resolve_first_number(disbursed_on, first_number, due_day, start_after)
    if method == EQUAL_INSTALMENT:
        payment = monthly_payment(principal, months, annual_rate)
        rows = _amortise(principal, months, annual_rate, payment=payment, principal_part=None)
    elif method == EQUAL_PRINCIPAL:
        part = Money.of(principal.amount / months)
        rows = _amortise(principal, months, annual_rate, payment=None, principal_part=part)
    else:
        raise ScheduleError(f"method must be one of {METHODS}, got {method!r}", field="method")
    return _compact(rows, principal, disbursed_on, first_number, due_day)


def shorten_term(
    outstanding: Money,
    payment_kept: Money,
    annual_rate: Decimal,
    method: str,
    disbursed_on: date,
    *,
    first_number: int,
    months_max: int,
    due_day: int | None = None,
) -> list[Instalment]:
    """LN-6 shorten-term as Instalments; see :func:`compact_shorten_term`."""
    return compact_shorten_term(outstanding, payment_kept, annual_rate, method, disbursed_on,
                                first_number=first_number, months_max=months_max, due_day=due_day).instalments()


def compact_shorten_term(
    outstanding: Money,
    payment_kept: Money,
    annual_rate: Decimal,
    method: str,
    disbursed_on: date,
    *,
    first_number: int,
    months_max: int,
    due_day: int | None = None,
) -> CompactSchedule:
    """LN-6 shorten-term: keep the payment (equal instalment) or the principal part (equal
    principal), take the fewest months at it; the last instalment repays the rest.

    ``months_max`` is the months left before the prepayment: the term never grows.
    """
    _check_terms(outstanding, months_max)
    annual_rate = check_rate(annual_rate)
    first_number = _resolve_first_number(disbursed_on, first_number, due_day, None)
    if payment_kept.is_negative:
        raise ScheduleError("the kept payment cannot be negative", field="payment_kept", rule="LN-6")
    if method == EQUAL_INSTALMENT:
        rows = _amortise(outstanding, months_max, annual_rate, payment=payment_kept, principal_part=None)
    elif method == EQUAL_PRINCIPAL:
        rows = _amortise(outstanding, months_max, annual_rate, payment=None, principal_part=payment_kept)
    else:
        raise ScheduleError(f"method must be one of {METHODS}, got {method!r}", field="method")
    return _compact(rows, outstanding, disbursed_on, first_number, due_day)


def total_interest(instalments: Sequence[Instalment]) -> Money:
    return Money.sum(i.interest for i in instalments)


# -- penalty interest (罚息, LN-7) ------------------------------------------------


@dataclass(frozen=True)
class PaidOn:
    """An amount paid towards one instalment on a value date (any mix of interest and principal)."""

    on: date
    amount: Money


@dataclass(frozen=True)
class PenaltyAccrual:
    """LN-7 penalty as a product of overdue amounts and days.

    For each day d after the due date the overdue base (unpaid principal + interest
    at the end of day d - 1) is added; ``penalty = round(product x rate x multiplier
    / 360)``. An instalment is overdue only if not fully paid by the end of its
    on-time date (due date + grace, or later when the deduction moved to a working
    day); it is then overdue from its due date, grace days included. Days inside a
    waiver (LN-8) add nothing. Rates may change over time: the product is weighted by
    the rate (percent) in force each day, and :meth:`penalty` rounds the weighted sum.
    """

    multiplier: Decimal = PENALTY_MULTIPLIER_DEFAULT
    grace_days: int = 0
    day_count: str = DAY_COUNT_ACTUAL

    def __post_init__(self) -> None:
        _check_day_count(self.day_count)
        if isinstance(self.multiplier, float) or not isinstance(self.multiplier, Decimal) or self.multiplier < 0:
            raise LoanRuleError("the penalty multiplier is a non-negative Decimal", field="multiplier", rule="LN-7")
        if not 0 <= self.grace_days <= GRACE_DAYS_MAX:
            raise LoanRuleError(f"grace days lie in 0..{GRACE_DAYS_MAX}", field="grace_days", rule="LN-7")

    def on_time_until(self, due_on: date, deduction_on: date | None = None) -> date:
        """The last day a payment is on time: due date + grace, or the moved deduction day if later."""
        deadline = due_on + timedelta(days=self.grace_days)
        return deadline if deduction_on is None else max(deadline, deduction_on)

    def is_overdue(self, due_on: date, amount: Money, paid: Sequence[PaidOn], on: date,
                   on_time_until: date | None = None) -> bool:
        """Whether, as known at the end of day ``on``, the instalment is overdue (LN-7)."""
        deadline = on_time_until or self.on_time_until(due_on)
        return on > deadline and unpaid_at_end_of(deadline, amount, paid).amount > 0

    def product(
        self,
        due_on: date,
        amount: Money,
        paid: Sequence[PaidOn],
        through: date,
        *,
        on_time_until: date | None = None,
        waivers: Sequence[DateRange] = (),
        rates: Sequence[tuple[date, Decimal]] | None = None,
    ) -> Decimal:
        """Sum over days d in (due_on, through] of base(d - 1) x day weight [x rate in force on d]."""
        if not self.is_overdue(due_on, amount, paid, through, on_time_until):
            return Decimal(0)
        total = Decimal(0)
        with localcontext() as context:
            context.prec = DECIMAL_PRECISION
            for first, last in _segments(due_on, through, amount, paid, waivers, rates):
                if _is_waived(first, waivers):
                    continue
                base = unpaid_at_end_of(first - timedelta(days=1), amount, paid)
                rate = Decimal(1) if rates is None else rate_on(rates, first)
                total += base.amount * rate * days_between(first - timedelta(days=1), last, self.day_count)
        return total

    def penalty(self, product: Decimal, annual_rate: Decimal | None = None) -> Money:
        """round(product x rate x multiplier / 360); without ``annual_rate`` the product is rate-weighted."""
        rate = Decimal(1) if annual_rate is None else annual_rate
        with localcontext() as context:
            context.prec = DECIMAL_PRECISION
            return Money.of(product * rate * self.multiplier / (PERCENT * DAYS_PER_YEAR))


def _is_waived(day: date, waivers: Sequence[DateRange]) -> bool:
    return any(day in waiver for waiver in waivers)


def unpaid_at_end_of(day: date, amount: Money, paid: Sequence[PaidOn]) -> Money:
    """What is left of ``amount`` at the end of ``day`` after the payments value-dated up to it."""
    return amount - Money.sum(part.amount for part in paid if part.on <= day)


def paid_in_full_on(amount: Money, paid: Sequence[PaidOn]) -> date | None:
    """The value date on which the payments first covered ``amount``, or None."""
    total = ZERO
    for part in sorted(paid, key=lambda p: p.on):
        total = total + part.amount
        if total >= amount:
            return part.on
    return None


def rate_on(rates: Sequence[tuple[date, Decimal]], day: date) -> Decimal:
    """The rate of the latest step starting on or before ``day`` (the first step if none)."""
    in_force = [step for step in rates if step[0] <= day]
    return max(in_force, key=lambda step: step[0])[1] if in_force else min(rates, key=lambda s: s[0])[1]


def _segments(
    due_on: date,
    through: date,
    amount: Money,
    paid: Sequence[PaidOn],
    waivers: Sequence[DateRange],
    rates: Sequence[tuple[date, Decimal]] | None,
) -> list[tuple[date, date]]:
    """Runs of days in (due_on, last day with a base] on which base, waiver and rate are constant.

    The last day with a base is the day of the payment that clears the instalment: that
    day still adds the base left at the end of the day before.
    """
    start = due_on + timedelta(days=1)
    settled_on = paid_in_full_on(amount, paid)
    end = through if settled_on is None else min(through, settled_on)
    one_day = timedelta(days=1)
    changes = {part.on + one_day for part in paid}
    changes |= {w.start_on for w in waivers} | {w.end_on + one_day for w in waivers}
    changes |= {step[0] for step in rates or ()}
    cuts = sorted(day for day in changes if start < day <= end) + [end + one_day]
    segments, first = [], start
    for cut in cuts:
        if first <= cut - one_day:
            segments.append((first, cut - one_day))
        first = cut
    return segments
