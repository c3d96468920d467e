"""The repayment book of one fund loan: a pure, in-memory state machine over loan_math.

It holds the schedule and, per instalment, what was paid and when; the penalty
(罚息) crystallised and paid; the crystallisation points and the product they
consumed; waivers (不作逾期处理), prepayments (提前还款) and the payoff (结清).
Every method takes its dates as arguments (MNY-2) and dates only move forward:
the book's time is the latest date it was given. It knows nothing of events,
storage or accounts; an aggregate drives it and posts what it returns. It is
plain dataclasses, so ``copy.deepcopy`` gives an independent copy, and replaying
the same calls on ``LoanBook.open(terms)`` rebuilds it.

Rules: LN-2 repricing, LN-4 due dates and moved deductions, LN-5 amount due and
allocation order, LN-6 prepayment and payoff, LN-7 penalty and ageing, LN-8
waivers, COR-3 reversal of a payment.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Callable, Iterable, Sequence

from ledger.calendar import WorkingCalendar
from ledger.loan_math import (
    DAY_COUNT_ACTUAL,
    EQUAL_INSTALMENT,
    PENALTY_MULTIPLIER_DEFAULT,
    DateRange,
    Instalment,
    LoanRuleError,
    PaidOn,
    PenaltyAccrual,
    PrepaymentNotAllowed,
    CompactSchedule,
    ScheduleError,
    _interest_ratio,
    check_rate,
    compact_schedule,
    due_date,
    compact_shorten_term,
    days_between,
    first_period_starting_on_or_after,
    interest_for_days,
    paid_in_full_on,
    period_start,
)
from ledger.money import FEN, ZERO, Money
from ledger.rules import HistoryRequired

FEN_ZERO = FEN - FEN  # Decimal('0.00')


def _fen_of(money: Money) -> int:
    return int(money.amount.scaleb(2))

REDUCE_PAYMENT = "reduce-payment"
SHORTEN_TERM = "shorten-term"
PREPAYMENT_MODES = (REDUCE_PAYMENT, SHORTEN_TERM)
AGEING_BUCKETS = ((30, "1-30"), (60, "31-60"), (90, "61-90"))
AGEING_BUCKET_LAST = "91+"
REASON_PAYMENT = "payment"
REASON_WAIVER = "waiver"
REASON_PAYOFF = "payoff"


class BackdatedOperation(LoanRuleError):
    """MNY-4: the book only moves forward; an earlier date needs a rebuild from the events."""

    rule = "MNY-4"


class LoanClosed(LoanRuleError):
    """LN-6: the loan was paid off; nothing more is applied to it."""

    rule = "LN-6"


class AmountRefused(LoanRuleError):
    rule = "MNY-1"


class ReversalNotAllowed(LoanRuleError):
    rule = "COR-3"


class RepricingError(ScheduleError):
    rule = "LN-2"


# -- records ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoanTerms:
    """The contract and the ⚙ parameters the book applies (names as in the policy file)."""

    principal: Money
    months: int
    annual_rate: Decimal
    method: str
    disbursed_on: date
    due_day: int | None = None
    grace_days: int = 0
    penalty_multiplier: Decimal = PENALTY_MULTIPLIER_DEFAULT
    penalty_day_count: str = DAY_COUNT_ACTUAL
    prepayment_day_count: str = DAY_COUNT_ACTUAL
    prepayment_blackout_days: int = 0
    prepayment_minimum: Money = ZERO

    def __post_init__(self) -> None:
        _ = self.penalty_accrual  # validates grace days, multiplier and day count now
        days_between(self.disbursed_on, self.disbursed_on, self.prepayment_day_count)
        if self.prepayment_blackout_days < 0:
            raise PrepaymentNotAllowed("blackout days cannot be negative", field="prepayment_blackout_days")

    @cached_property
    def penalty_accrual(self) -> PenaltyAccrual:
        return PenaltyAccrual(self.penalty_multiplier, self.grace_days, self.penalty_day_count)


@dataclass(frozen=True)
class PaidPart:
    """What one allocation paid of one instalment on its value date."""

    on: date
    allocation_number: int
    interest: Money
    principal: Money


@dataclass
class InstalmentAccount:
    """One instalment and what has been paid of it (the totals are kept with the parts)."""

    instalment: Instalment
    annual_rate: Decimal
    on_time_until: date
    paid: list[PaidPart] = field(default_factory=list)
    interest_paid: Money = ZERO
    principal_paid: Money = ZERO
    # cache: (day the instalment was cleared, its final penalty product); not state
    product_settled: tuple[date, Decimal] | None = field(default=None, compare=False, repr=False)

    @property
    def number(self) -> int:
        return self.instalment.number

    @property
    def due_on(self) -> date:
        return self.instalment.due_on

    @property
    def cleared(self) -> bool:
        return self.interest_paid == self.instalment.interest and self.principal_paid == self.instalment.principal

    @property
    def interest_unpaid(self) -> Money:
        return self.instalment.interest - self.interest_paid if self.paid else self.instalment.interest

    @property
    def principal_unpaid(self) -> Money:
        return self.instalment.principal - self.principal_paid if self.paid else self.instalment.principal

    @property
    def unpaid(self) -> Money:
        if self.cleared:
            return ZERO
        return self.instalment.payment - self.interest_paid - self.principal_paid

    def add(self, part: PaidPart) -> None:
        self.paid.append(part)
        self.interest_paid += part.interest
        self.principal_paid += part.principal

    def remove_allocation(self, allocation_number: int) -> bool:
        """Drop what one allocation paid (COR-3); whether it had paid anything here."""
        kept = [part for part in self.paid if part.allocation_number != allocation_number]
        if len(kept) == len(self.paid):
            return False
        self.paid = []
        self.interest_paid = self.principal_paid = ZERO
        for part in kept:
            self.add(part)
        self.product_settled = None
        return True

    def paid_on(self) -> list[PaidOn]:
        return [PaidOn(part.on, part.interest + part.principal) for part in self.paid]


@dataclass(frozen=True)
class InstalmentPart:
    number: int
    interest: Money
    principal: Money


@dataclass(frozen=True)
class Allocation:
    """LN-5: how one payment was applied. ``excess`` was not applied (prepayment or suspense)."""

    number: int
    on: date
    amount: Money
    penalty_crystallised: Money
    penalty: Money
    interest: Money
    principal: Money
    excess: Money
    parts: tuple[InstalmentPart, ...]


@dataclass(frozen=True)
class Crystallisation:
    """LN-7: the penalty fixed on ``on``; ``product`` is the cumulative rate-weighted product consumed."""

    on: date
    reason: str
    product: Decimal
    penalty: Money


@dataclass(frozen=True)
class Waiver(DateRange):
    """LN-8 不作逾期处理: no penalty, no overdue status, no ageing on these days.

    ``instalment_number`` limits it to one instalment (OFF-3: a debit failed through the
    bank's or the centre's fault); None covers the whole loan.
    """

    declared_on: date
    instalment_number: int | None = None

    def covers(self, number: int) -> bool:
        return self.instalment_number is None or self.instalment_number == number


@dataclass(frozen=True)
class WaiverEffect:
    waiver: Waiver
    penalty_crystallised: Money
    penalty_reversed: Money
    penalty_refund: Money


@dataclass(frozen=True)
class Reversal:
    """COR-3: what reversing an allocation reopened."""

    allocation_number: int
    on: date
    penalty: Money
    interest: Money
    principal: Money


@dataclass(frozen=True)
class PrepaymentQuote:
    on: date
    principal: Money
    interest: Money
    interest_from: date
    days: int

    @property
    def paid(self) -> Money:
        return self.principal + self.interest


@dataclass(frozen=True)
class Prepayment:
    quote: PrepaymentQuote
    mode: str
    first_number: int
    payment_after: Money
    months_after: int


@dataclass(frozen=True)
class PayoffQuote:
    """LN-6 结清: amount due + outstanding principal + its interest to D."""

    on: date
    amount_due: Money
    principal: Money
    interest: Money

    @property
    def total(self) -> Money:
        return self.amount_due + self.principal + self.interest


@dataclass(frozen=True)
class Payoff:
    quote: PayoffQuote
    allocation: Allocation | None


@dataclass(frozen=True)
class RateChange:
    effective_on: date
    from_number: int
    annual_rate: Decimal
    payment_after: Money


@dataclass(frozen=True)
class LoanStatus:
    """What the loan looks like at the end of ``on``; computing it changes nothing."""

    on: date
    amount_due: Money
    penalty_unpaid: Money
    penalty_uncrystallised: Money
    interest_due: Money
    principal_due: Money
    outstanding_principal: Money
    days_past_due: int
    ageing_bucket: str | None
    overdue_numbers: tuple[int, ...]
    missed_in_a_row: int
    missed_in_a_row_max: int
    missed_total: int
    closed: bool


def ageing_bucket(days_past_due: int) -> str | None:
    """LN-7 buckets 1-30, 31-60, 61-90, 91+; None when nothing is past due."""
    if days_past_due <= 0:
        return None
    for days_max, name in AGEING_BUCKETS:
        if days_past_due <= days_max:
            return name
    return AGEING_BUCKET_LAST


def _days_outside(start_exclusive: date, end_inclusive: date, ranges: Iterable[DateRange]) -> int:
    """Days in (start_exclusive, end_inclusive] not inside any of ``ranges`` (overlaps merged)."""
    if end_inclusive <= start_exclusive:
        return 0
    first, last = start_exclusive + timedelta(days=1), end_inclusive
    covered, reach = 0, first - timedelta(days=1)
    for waiver in sorted(ranges, key=lambda r: r.start_on):
        start, end = max(waiver.start_on, reach + timedelta(days=1)), min(waiver.end_on, last)
        if start <= end:
            covered += (end - start).days + 1
            reach = end
    return (last - first).days + 1 - covered


# -- the book ------------------------------------------------------------------------


class TailError(ScheduleError):
    """Schedule rows that are not one LN-3 recurrence (a tail is kept as the recurrence's state)."""


@dataclass
class ScheduleTail:
    """The instalments not built yet, kept as the state of the LN-3 recurrence that makes them
    (integer fen, ``loan_math._amortise``): the next row is computed when an operation reaches its
    due date, so a 360-month loan keeps a few integers, not 360 rows. ``outstanding`` is the
    principal of the unbuilt rows; ``months_left`` counts them up to the last (which repays the
    rest; a kept payment may clear the principal earlier, LN-6 shorten-term). Equal instalment
    keeps ``payment``, equal principal keeps ``part``."""

    next_number: int
    outstanding: int
    months_left: int
    payment: int | None
    part: int | None
    annual_rate: Decimal

    @classmethod
    def of(cls, schedule: CompactSchedule, annual_rate: Decimal) -> "ScheduleTail":
        return cls.from_rows(schedule.first_number, schedule.rows, annual_rate)

    @classmethod
    def from_rows(cls, first_number: int, rows: Sequence[tuple[int, int]], annual_rate: Decimal) -> "ScheduleTail":
        """The recurrence that gives ``rows`` exactly (checked by running it), or ``TailError``."""
        first_part, first_interest = rows[0]
        principal = sum(part for part, _ in rows)
        for payment, part in ((first_part + first_interest, None), (None, first_part)):
            tail = cls(first_number, principal, len(rows), payment, part, annual_rate)
            if tail.copy().rows() == list(rows):
                return tail
        raise TailError(f"instalments {first_number}.. are not one equal-instalment or equal-principal run")

    def copy(self) -> "ScheduleTail":
        return replace(self)

    def take(self) -> tuple[int, int]:
        """The next row (principal, interest) in fen; the tail moves on past it."""
        numerator, denominator = _interest_ratio(self.annual_rate)
        quotient, remainder = divmod(self.outstanding * numerator, denominator)
        interest = quotient + 1 if 2 * remainder >= denominator else quotient  # half up, never negative
        if self.months_left == 1:
            part = self.outstanding
        elif self.payment is not None:
            part = min(self.payment - interest, self.outstanding)
        else:
            part = min(self.part or 0, self.outstanding)
        if part < 0:
            raise ScheduleError(f"the payment {Money.from_fen(self.payment or 0)} does not cover the interest "
                                f"{Money.from_fen(interest)}")
        self.outstanding -= part
        self.months_left = 0 if self.outstanding == 0 else self.months_left - 1
        self.next_number += 1
        return part, interest

    def rows(self) -> list[tuple[int, int]]:
        """Every row left (runs the recurrence to its end: take a copy first to keep the tail)."""
        rows = []
        while self.months_left > 0:
            rows.append(self.take())
        return rows

    @property
    def exhausted(self) -> bool:
        return self.months_left <= 0


@dataclass
class PrunedPrefix:
    """Instalments 1..``count``, cleared and decided, folded out of a compact book (ADR 0015).

    What the rules still need of them: their principal (conserved), their final penalty product
    (LN-7, the crystallisation watermark builds on it), their missed-instalment run, the last due
    date (LN-6 prepayment interest from it), and the folded crystallisations, prepayments and
    allocations' totals. ``through`` is the last day any folded fact is dated: an operation
    reaching back to it or before (a waiver starting then, the reversal of a folded payment)
    raises ``HistoryRequired`` and runs on the book replayed from every event.
    """

    count: int = 0
    principal: Money = ZERO
    product: Decimal = Decimal(0)
    missed_run: int = 0
    missed_longest: int = 0
    missed_total: int = 0
    last_due_on: date | None = None
    through: date | None = None
    watermark: Decimal = Decimal(0)
    penalty_charged: Money = ZERO
    prepaid: Money = ZERO
    prepayments: int = 0
    last_allocation: int = 0


@dataclass(eq=False)
class LoanBook:
    """The book. ``head`` holds the instalment accounts built so far, in number order; ``tail`` the
    rest of the schedule as integer rows, built into accounts only when an operation reaches their
    due dates (a 360-month loan loads without building 360 objects). ``accounts`` builds them all."""

    terms: LoanTerms
    head: list[InstalmentAccount]
    rate_steps: list[tuple[date, Decimal]]
    last_on: date
    crystallised_through: date
    calendar: WorkingCalendar | None = None
    waivers: list[Waiver] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    reversals: list[Reversal] = field(default_factory=list)
    crystallisations: list[Crystallisation] = field(default_factory=list)
    prepayments: list[Prepayment] = field(default_factory=list)
    rate_changes: list[RateChange] = field(default_factory=list)
    payoff: Payoff | None = None
    penalty_paid: Money = ZERO
    tail: ScheduleTail | None = None
    pruned: PrunedPrefix = field(default_factory=PrunedPrefix)
    allocation_count: int = 0
    owner: Any = field(default=None, init=False, compare=False, repr=False)  # the loan's id, for HistoryRequired

    @classmethod
    def open(cls, terms: LoanTerms, calendar: WorkingCalendar | None = None) -> "LoanBook":
        """A new book for a loan disbursed on ``terms.disbursed_on`` (rate in force that day, LN-2)."""
        rate = check_rate(terms.annual_rate)
        schedule = compact_schedule(
            terms.principal, terms.months, rate, terms.method, terms.disbursed_on, due_day=terms.due_day
        )
        book = cls(terms, [], [(terms.disbursed_on, rate)], terms.disbursed_on, terms.disbursed_on, calendar)
        book.tail = ScheduleTail.of(schedule, rate)
        book.check_invariants()
        return book

    def __eq__(self, other: object) -> bool:
        """Books are equal when their content is, however much of the schedule each has built."""
        if not isinstance(other, LoanBook):
            return NotImplemented
        return self._content() == other._content()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _content(self) -> tuple[Any, ...]:
        return (self.terms, self.accounts, self.rate_steps, self.last_on, self.crystallised_through, self.calendar,
                self.waivers, self.allocations, self.reversals, self.crystallisations, self.prepayments,
                self.rate_changes, self.payoff, self.penalty_paid, self.pruned, self.allocation_count)

    # -- building the schedule's accounts as operations reach them -----------------------
    @property
    def accounts(self) -> list[InstalmentAccount]:
        """Every instalment account, in number order (builds the whole schedule)."""
        self._build(None)
        return self.head

    def accounts_through(self, day: date) -> list[InstalmentAccount]:
        """The instalment accounts due on or before ``day``, in number order."""
        self._build(day)
        return [account for account in self.head if account.due_on <= day]

    def first_after(self, day: date) -> InstalmentAccount | None:
        """The first instalment account due after ``day``, or None."""
        self._build(day)
        if self.tail is not None and (not self.head or self.head[-1].due_on <= day):
            self._build(None, count=1)
        return next((account for account in self.head if account.due_on > day), None)

    @property
    def instalment_count(self) -> int:
        unbuilt = 0 if self.tail is None else len(self.tail.copy().rows())
        return self.pruned.count + len(self.head) + unbuilt

    @property
    def last_rate(self) -> Decimal:
        """The rate of the last instalment (a loan paid off before any instalment was built: its last rate)."""
        if self.tail is not None:
            return self.tail.annual_rate
        return self.head[-1].annual_rate if self.head else self.rate_steps[-1][1]

    def _build(self, through: date | None, count: int | None = None) -> None:
        """Build the tail's accounts due on or before ``through`` (all when None), or ``count`` more."""
        tail = self.tail
        if tail is None:
            return
        terms, from_fen, built = self.terms, Money.from_fen, []
        while not tail.exhausted and (count is None or len(built) < count):
            number = tail.next_number
            due_on = due_date(terms.disbursed_on, number, terms.due_day)
            if count is None and through is not None and due_on > through:
                break
            part, interest = tail.take()
            built.append(Instalment(number, due_on, from_fen(part), from_fen(interest), from_fen(part + interest),
                                    from_fen(tail.outstanding)))
        if built:
            self.head.extend(self._accounts_for(built, tail.annual_rate))
        if tail.exhausted:
            self.tail = None

    def _build_number(self, number: int) -> None:
        """Build the accounts up to instalment ``number``."""
        if self.tail is not None and number >= self.tail.next_number:
            self._build(None, count=number - self.tail.next_number + 1)

    # -- small queries -------------------------------------------------------------
    @property
    def schedule(self) -> list[Instalment]:
        return [account.instalment for account in self.accounts]

    @property
    def closed(self) -> bool:
        return self.payoff is not None

    @property
    def penalty_charged(self) -> Money:
        return self.pruned.penalty_charged + Money.sum(c.penalty for c in self.crystallisations)

    @property
    def penalty_unpaid(self) -> Money:
        """Crystallised and not yet paid."""
        return self.penalty_charged - self.penalty_paid

    @property
    def outstanding_principal(self) -> Money:
        built = Money.sum(account.principal_unpaid for account in self.head if not account.cleared)
        return built if self.tail is None else built + Money.from_fen(self.tail.outstanding)

    @property
    def is_repaid(self) -> bool:
        return self.tail is None and all(account.cleared for account in self.head)

    def account(self, number: int) -> InstalmentAccount:
        self._build_number(number)
        if 1 <= number <= self.pruned.count:
            raise HistoryRequired(self.owner, f"instalment {number} (folded)")
        index = number - self.pruned.count - 1
        if 0 <= index < len(self.head):
            return self.head[index]  # numbered without gaps (check_invariants)
        raise KeyError(number)

    def _accounts_for(self, schedule: list[Instalment], rate: Decimal) -> list[InstalmentAccount]:
        on_time_until, calendar = self.terms.penalty_accrual.on_time_until, self.calendar
        if calendar is None:
            return [InstalmentAccount(i, rate, on_time_until(i.due_on)) for i in schedule]
        next_working_day = calendar.next_working_day
        return [InstalmentAccount(i, rate, on_time_until(i.due_on, next_working_day(i.due_on))) for i in schedule]

    def _check_date(self, on: date) -> None:
        if on < self.last_on:
            raise BackdatedOperation(f"{on} is before the book's date {self.last_on}", field="on")

    def _advance(self, on: date) -> None:
        self._check_date(on)
        self.last_on = on

    def _check_open(self) -> None:
        if self.closed:
            raise LoanClosed("the loan is paid off", rule="LN-6")

    def _forget_products(self) -> None:
        for account in self.head:  # the tail has no payments, so no cached products
            account.product_settled = None

    # -- penalty (LN-7) ----------------------------------------------------------------
    def _account_product(self, account: InstalmentAccount, through: date, use_cache: bool) -> Decimal:
        if account.due_on >= through:
            return Decimal(0)
        if use_cache and account.product_settled is not None and account.product_settled[0] <= through:
            return account.product_settled[1]
        paid = account.paid_on()
        product = self.terms.penalty_accrual.product(
            account.due_on, account.instalment.payment, paid, through,
            on_time_until=account.on_time_until, waivers=self._waivers_for(account), rates=self.rate_steps,
        )
        settled_on = paid_in_full_on(account.instalment.payment, paid)
        if use_cache and settled_on is not None and settled_on <= through:
            account.product_settled = (settled_on, product)  # final: no day after the payment adds anything
        return product

    def _product(self, through: date, use_cache: bool = True) -> Decimal:
        """Cumulative rate-weighted product of every instalment through ``through``, as known then."""
        if self.pruned.count and self.pruned.through is not None and through < self.pruned.through:
            raise HistoryRequired(self.owner, f"the penalty product on {through}")
        total = self.pruned.product
        self._build(through)
        for account in self.head:  # in due-date order: the rest add nothing yet
            if account.instalment.due_on >= through:
                break
            total += self._account_product(account, through, use_cache)
        return total

    def _pending(self, on: date, reason: str) -> list[Crystallisation]:
        """The crystallisations due by ``on``: each waiver start passed, then ``on`` itself."""
        starts = {w.start_on for w in self.waivers if self.crystallised_through < w.start_on < on}
        points = [(start, REASON_WAIVER) for start in sorted(starts)] + [(on, reason)]
        watermark = self.crystallisations[-1].product if self.crystallisations else self.pruned.watermark
        pending, accrual = [], self.terms.penalty_accrual
        for point, why in points:
            product = self._product(point)
            if product != watermark:
                pending.append(Crystallisation(point, why, product, accrual.penalty(product - watermark)))
                watermark = product
        return pending

    def _crystallise(self, on: date, reason: str) -> Money:
        pending = self._pending(on, reason)
        self.crystallisations.extend(pending)
        self.crystallised_through = max(self.crystallised_through, on)
        return Money.sum(c.penalty for c in pending)

    def penalty_uncrystallised(self, on: date) -> Money:
        """What crystallising on ``on`` would add; changes nothing (LN-7 status)."""
        self._check_date(on)
        return Money.sum(c.penalty for c in self._pending(on, REASON_PAYMENT))

    # -- amount due and allocation (LN-5) -------------------------------------------------
    def _due_accounts(self, on: date) -> list[InstalmentAccount]:
        """Instalments due on or before ``on`` with an unpaid part, oldest first."""
        due = []
        self._build(on)
        for account in self.head:  # in due-date order
            if account.due_on > on:
                break
            if not account.cleared:
                due.append(account)
        return due

    def amount_due(self, on: date) -> Money:
        """LN-5: penalty not yet paid (crystallised or not, to D) + unpaid parts of instalments due by D."""
        self._check_date(on)
        if self.closed:
            return ZERO
        unpaid = Money.sum(a.unpaid for a in self._due_accounts(on))
        return self.penalty_unpaid + self.penalty_uncrystallised(on) + unpaid

    def allocate(self, amount: Money, on: date) -> Allocation:
        """Apply one payment on ``on`` in the LN-5 order; call again for the next payer of a deduction."""
        if not isinstance(amount, Money) or amount.amount <= 0:
            raise AmountRefused(f"a payment is a positive Money, got {amount!r}", field="amount")
        self._check_open()
        self._advance(on)
        crystallised = self._crystallise(on, REASON_PAYMENT)
        allocation = self._apply(amount, on, crystallised)
        self.check_invariants()
        return allocation

    def _apply(self, amount: Money, on: date, crystallised: Money) -> Allocation:
        remaining = amount
        penalty = remaining.min(self.penalty_unpaid)
        remaining -= penalty
        self.penalty_paid += penalty
        due = self._due_accounts(on)
        # LN-4/LN-5: an instalment still on time on D (its deduction moved to this working day, or in
        # grace) is "the instalment due on D", paid after every late one.
        past = [a for a in due if a.due_on < on and a.on_time_until < on]
        today = [a for a in due if not (a.due_on < on and a.on_time_until < on)]
        taken: dict[int, list[Money]] = {a.number: [ZERO, ZERO] for a in due}
        steps = [(a, 0) for a in past] + [(a, 1) for a in past]
        steps += [step for a in today for step in ((a, 0), (a, 1))]
        for account, side in steps:
            owed = (account.interest_unpaid, account.principal_unpaid)[side]
            part = remaining.min(owed)
            taken[account.number][side] += part
            remaining -= part
        number = self.allocation_count + 1
        self.allocation_count = number
        parts = self._record_parts(due, taken, on, number)
        allocation = Allocation(
            number, on, amount, crystallised, penalty,
            Money.sum(p.interest for p in parts), Money.sum(p.principal for p in parts), remaining, parts,
        )
        self.allocations.append(allocation)
        return allocation

    def _record_parts(
        self, due: list[InstalmentAccount], taken: dict[int, list[Money]], on: date, number: int
    ) -> tuple[InstalmentPart, ...]:
        parts = []
        for account in due:
            interest, principal = taken[account.number]
            if interest.is_zero and principal.is_zero:
                continue
            account.add(PaidPart(on, number, interest, principal))
            parts.append(InstalmentPart(account.number, interest, principal))
        return tuple(parts)

    # -- reversal (COR-3) ------------------------------------------------------------------
    def reverse(self, allocation_number: int, on: date) -> Reversal:
        """Reopen what an allocation paid; overdue status and penalty follow from the original due dates."""
        self._check_open()
        allocation = next((a for a in self.allocations if a.number == allocation_number), None)
        if allocation is None and 1 <= allocation_number <= self.pruned.last_allocation:
            raise HistoryRequired(self.owner, f"allocation {allocation_number} (folded)")
        if allocation is None:
            raise ReversalNotAllowed(f"no allocation {allocation_number}", field="allocation_number")
        if any(part.number <= self.pruned.count for part in allocation.parts):
            raise HistoryRequired(self.owner, f"allocation {allocation_number} paid a folded instalment")
        if any(r.allocation_number == allocation_number for r in self.reversals):
            raise ReversalNotAllowed(f"allocation {allocation_number} is already reversed", rule="COR-1")
        if allocation.penalty > self.penalty_paid:
            # a late waiver (LN-8) already refunded penalty this payment paid: mirroring the whole payment
            # would take that penalty back twice
            raise ReversalNotAllowed(f"allocation {allocation_number} paid penalty {allocation.penalty} that a "
                                     "waiver has since refunded; correct it by hand", field="allocation_number")
        self._advance(on)
        for account in self.head:  # only built accounts have payments
            account.remove_allocation(allocation_number)
        self.penalty_paid -= allocation.penalty
        reversal = Reversal(allocation_number, on, allocation.penalty, allocation.interest, allocation.principal)
        self.reversals.append(reversal)
        self.check_invariants()
        return reversal

    # -- waivers (LN-8) ----------------------------------------------------------------------
    def add_waiver(
        self, start_on: date, end_on: date, declared_on: date, instalment_number: int | None = None
    ) -> WaiverEffect:
        """Declare a waiver; a late one reverses the penalty already crystallised for covered days."""
        self._check_open()
        self._advance(declared_on)
        waiver = Waiver(start_on, end_on, declared_on, instalment_number)
        late = start_on <= self.crystallised_through
        if late and self.pruned.through is not None and start_on <= self.pruned.through:
            raise HistoryRequired(self.owner, f"a waiver from {start_on} over folded instalments")
        self.waivers.append(waiver)
        self._forget_products()
        reversed_amount = self._recrystallise() if late else ZERO
        refund = (self.penalty_paid - self.penalty_charged).max(ZERO)
        self.penalty_paid -= refund
        in_force = start_on <= declared_on <= end_on  # it starts now, as far as the book can tell
        crystallised = self._crystallise(declared_on, REASON_WAIVER) if in_force else ZERO
        self.check_invariants()
        return WaiverEffect(waiver, crystallised, reversed_amount, refund)

    def _recrystallise(self) -> Money:
        """Redo every crystallisation at its date with today's waivers; returns the penalty removed."""
        charged_before = self.penalty_charged
        redone, watermark = [], self.pruned.watermark
        for crystallisation in self.crystallisations:
            product = self._product(crystallisation.on, use_cache=False)
            penalty = self.terms.penalty_accrual.penalty(product - watermark)
            redone.append(replace(crystallisation, product=product, penalty=penalty))
            watermark = product
        self.crystallisations = redone
        return charged_before - self.penalty_charged

    # -- ageing and missed instalments (LN-7) --------------------------------------------------
    def _waivers_for(self, account: InstalmentAccount) -> list[Waiver]:
        return [waiver for waiver in self.waivers if waiver.covers(account.number)]

    def _waived(self, account: InstalmentAccount, day: date) -> bool:
        return any(day in waiver for waiver in self._waivers_for(account))

    def days_past_due(self, on: date) -> int:
        """Days since the due date of the oldest instalment with an unpaid part; 0 in grace or waiver.

        Days inside a waiver are not counted (LN-8: nothing counted for ageing)."""
        if self.closed:
            return 0
        self._build(on)
        oldest = next((a for a in self.head if a.due_on < on and not a.cleared), None)
        if oldest is None or on <= oldest.on_time_until or self._waived(oldest, on):
            return 0
        return _days_outside(oldest.due_on, on, self._waivers_for(oldest))

    def _missed(self, account: InstalmentAccount, on: date) -> bool:
        """Overdue for the borrower's cause, even if later paid: not paid on time and at least one
        overdue day outside every waiver."""
        if account.cleared and (not account.paid or account.paid[-1].on <= account.on_time_until):
            return False  # paid on time: the common case, decided without arithmetic
        paid = account.paid_on()
        if not self.terms.penalty_accrual.is_overdue(
            account.due_on, account.instalment.payment, paid, on, account.on_time_until
        ):
            return False
        settled_on = paid_in_full_on(account.instalment.payment, paid)
        last = on if settled_on is None else min(on, settled_on)
        return _days_outside(account.due_on, last, self._waivers_for(account)) > 0

    def missed_counts(self, on: date) -> tuple[int, int, int]:
        """(in a row now, longest run, total) over instalments whose on-time date has passed."""
        self._build(on)
        decided = [a for a in self.head if a.on_time_until < on]  # on time until >= due date
        run, longest, total = self.pruned.missed_run, self.pruned.missed_longest, self.pruned.missed_total
        for account in decided:
            if self._missed(account, on):
                run, total = run + 1, total + 1
                longest = max(longest, run)
            else:
                run = 0
        return run, longest, total

    def status(self, on: date) -> LoanStatus:
        self._check_date(on)
        due = [] if self.closed else self._due_accounts(on)
        overdue = tuple(
            a.number for a in due
            if a.on_time_until < on and not self._waived(a, on) and self._missed(a, on)
        )
        days = self.days_past_due(on)
        in_a_row, longest, total = self.missed_counts(on)
        return LoanStatus(
            on, self.amount_due(on), self.penalty_unpaid,
            ZERO if self.closed else self.penalty_uncrystallised(on),
            Money.sum(a.interest_unpaid for a in due), Money.sum(a.principal_unpaid for a in due),
            self.outstanding_principal, days, ageing_bucket(days), overdue, in_a_row, longest, total, self.closed,
        )

    # -- rescheduling (LN-2, LN-6) ------------------------------------------------------------
    def _future(self, on: date) -> list[InstalmentAccount]:
        return [a for a in self.accounts if a.due_on > on]

    def _replace_from(self, number: int, schedule: CompactSchedule, rate: Decimal) -> None:
        self._build_number(number - 1)
        self.head = [a for a in self.head if a.number < number]
        self.tail = ScheduleTail.of(schedule, rate)

    def _rebuild_from(self, number: int, rate: Decimal) -> None:
        """Recompute instalments ``number``.. from their principal over their months (LN-2 style)."""
        rest = [a for a in self.accounts if a.number >= number]
        if any(a.paid for a in rest):
            raise RepricingError(f"instalment {number} or a later one already has payments")
        outstanding = Money.sum(a.instalment.principal for a in rest)
        schedule = compact_schedule(
            outstanding, len(rest), rate, self.terms.method, self.terms.disbursed_on,
            first_number=number, due_day=self.terms.due_day,
        )
        self._replace_from(number, schedule, rate)

    def reprice(self, annual_rate: Decimal, effective_on: date) -> RateChange | None:
        """LN-2: from the first instalment period starting on or after ``effective_on`` (1 January)."""
        self._check_open()
        rate = check_rate(annual_rate)
        self._advance(effective_on)
        number = first_period_starting_on_or_after(self.terms.disbursed_on, effective_on, self.terms.due_day)
        rest = [a for a in self.accounts if a.number >= number]
        if not rest or rest[0].annual_rate == rate:
            return None
        self._rebuild_from(number, rate)
        step_on = period_start(self.terms.disbursed_on, number, self.terms.due_day)
        self.rate_steps = sorted([s for s in self.rate_steps if s[0] < step_on] + [(step_on, rate)])
        self._forget_products()
        change = RateChange(effective_on, number, rate, self.account(number).instalment.payment)
        self.rate_changes.append(change)
        self.check_invariants()
        return change

    def _last_due_on(self, on: date) -> date:
        dues = [a.due_on for a in self.accounts_through(on)]
        return max(dues) if dues else (self.pruned.last_due_on or self.terms.disbursed_on)

    def _rate_on(self, on: date) -> Decimal:
        upcoming = self.first_after(on)
        return upcoming.annual_rate if upcoming else self.head[-1].annual_rate

    def prepayment_quote(self, principal: Money, on: date) -> PrepaymentQuote:
        """LN-6: check the conditions and price a prepayment on ``on``; changes nothing."""
        self._check_open()
        self._check_date(on)
        if not isinstance(principal, Money) or principal.amount <= 0:
            raise AmountRefused(f"a prepayment is a positive Money, got {principal!r}", field="principal")
        if not self.amount_due(on).is_zero:
            raise PrepaymentNotAllowed("the amount due must be paid first", field="on")
        last_due_on = self._last_due_on(on)
        blackout = self.terms.prepayment_blackout_days
        if blackout > 0 and last_due_on != self.terms.disbursed_on and on <= last_due_on + timedelta(days=blackout):
            raise PrepaymentNotAllowed(f"within {blackout} days after the due date {last_due_on}", field="on")
        outstanding = Money.sum(a.principal_unpaid for a in self._future(on))
        if principal >= outstanding:
            raise PrepaymentNotAllowed(f"{principal} repays all {outstanding}: use payoff", field="principal")
        if principal < self.terms.prepayment_minimum:
            raise PrepaymentNotAllowed(f"below the minimum {self.terms.prepayment_minimum}", field="principal")
        day_count = self.terms.prepayment_day_count
        interest = interest_for_days(principal, self._rate_on(on), last_due_on, on, day_count)
        days = days_between(last_due_on, on, day_count)
        return PrepaymentQuote(on, principal, interest, last_due_on, days)

    def prepay(self, principal: Money, on: date, mode: str) -> Prepayment:
        """LN-6 prepayment in ``reduce-payment`` or ``shorten-term`` mode; returns what was paid."""
        if mode not in PREPAYMENT_MODES:
            raise PrepaymentNotAllowed(f"mode must be one of {PREPAYMENT_MODES}, got {mode!r}", field="mode")
        quote = self.prepayment_quote(principal, on)
        self._advance(on)
        future = self._future(on)
        later_rates = [(a.number, a.annual_rate) for a in future if a.annual_rate != future[0].annual_rate]
        outstanding = Money.sum(a.principal_unpaid for a in future) - principal
        self._replace_from(future[0].number, self._rescheduled(future, outstanding, mode), future[0].annual_rate)
        self._reapply_rates(later_rates)
        first = self.account(future[0].number)
        prepayment = Prepayment(quote, mode, first.number, first.instalment.payment, len(self._future(on)))
        self.prepayments.append(prepayment)
        self.check_invariants()
        return prepayment

    def _rescheduled(self, future: list[InstalmentAccount], outstanding: Money, mode: str) -> CompactSchedule:
        first, terms = future[0], self.terms
        if mode == REDUCE_PAYMENT or len(future) == 1:
            return compact_schedule(
                outstanding, len(future), first.annual_rate, terms.method, terms.disbursed_on,
                first_number=first.number, due_day=terms.due_day,
            )
        kept = first.instalment.payment if terms.method == EQUAL_INSTALMENT else first.instalment.principal
        return compact_shorten_term(
            outstanding, kept, first.annual_rate, terms.method, terms.disbursed_on,
            first_number=first.number, months_max=len(future), due_day=terms.due_day,
        )

    def _reapply_rates(self, later_rates: list[tuple[int, Decimal]]) -> None:
        """A repricing already decided for later instalments survives a prepayment."""
        for number, rate in later_rates:
            if any(a.number == number for a in self.accounts):
                if self.account(number).annual_rate != rate:
                    self._rebuild_from(number, rate)

    def payoff_quote(self, on: date) -> PayoffQuote:
        """LN-6: what paying the loan off on ``on`` costs; changes nothing."""
        self._check_open()
        self._check_date(on)
        principal = Money.sum(a.principal_unpaid for a in self._future(on))
        interest = interest_for_days(
            principal, self._rate_on(on), self._last_due_on(on), on, self.terms.prepayment_day_count
        )
        return PayoffQuote(on, self.amount_due(on), principal, interest)

    def pay_off(self, on: date) -> Payoff:
        """结清: crystallise, pay the amount due, repay the rest with its interest, close the book."""
        quote = self.payoff_quote(on)
        self._advance(on)
        crystallised = self._crystallise(on, REASON_PAYOFF)
        due = self.penalty_unpaid + Money.sum(a.unpaid for a in self._due_accounts(on))
        assert due == quote.amount_due, "the quote and the crystallised amount due agree"
        allocation = self._apply(due, on, crystallised) if due.amount > 0 else None
        self.head, self.tail = self.accounts_through(on), None
        self.payoff = Payoff(quote, allocation)
        self.check_invariants()
        return self.payoff

    # -- decision state (ADR 0015) -----------------------------------------------------------
    def compact(self, recognised: Callable[[InstalmentAccount], bool] = lambda account: True) -> None:
        """Fold the cleared, decided instalments at the head into ``pruned``, with the crystallisations,
        allocations, reversals, prepayments, repricings and waivers that concern only them; give the
        unpaid future instalments back to the tail. The rules decide the same on the result, or raise
        ``HistoryRequired`` where they would need what was folded. ``recognised(account)``: the
        instalment's interest has fallen due on the loan (only such an instalment may be folded)."""
        if self.closed:
            return
        on, fold = self.last_on, 0
        for account in self.head:
            if not (account.cleared and account.on_time_until < on and recognised(account)):
                break
            fold += 1
        if fold:
            self._fold(self.head[:fold], on)
        self._unbuild_future()

    def _fold(self, folded: list[InstalmentAccount], on: date) -> None:
        pruned = self.pruned
        run, longest, total = pruned.missed_run, pruned.missed_longest, pruned.missed_total
        product = pruned.product
        through = pruned.through or self.terms.disbursed_on
        for account in folded:
            product += self._account_product(account, on, use_cache=False)
            if self._missed(account, on):
                run, total = run + 1, total + 1
                longest = max(longest, run)
            else:
                run = 0
            settled = paid_in_full_on(account.instalment.payment, account.paid_on()) or account.due_on
            through = max(through, settled, account.due_on)
        last = folded[-1].number
        first_live_due = self.head[len(folded)].due_on if len(self.head) > len(folded) else None
        kept_allocations = [a for a in self.allocations
                            if a.on > through or any(part.number > last for part in a.parts)
                            or (not a.parts and first_live_due is not None and first_live_due <= a.on)]
        kept_numbers = {a.number for a in kept_allocations}
        dropped = [a.number for a in self.allocations if a.number not in kept_numbers]
        folded_crystallisations = [c for c in self.crystallisations if c.on <= through]
        folded_prepayments = [p for p in self.prepayments if p.quote.on <= through]
        self.pruned = replace(
            pruned, count=last, principal=pruned.principal + Money.sum(a.instalment.principal for a in folded),
            product=product, missed_run=run, missed_longest=longest, missed_total=total,
            last_due_on=folded[-1].due_on, through=through,
            watermark=folded_crystallisations[-1].product if folded_crystallisations else pruned.watermark,
            penalty_charged=pruned.penalty_charged + Money.sum(c.penalty for c in folded_crystallisations),
            prepaid=pruned.prepaid + Money.sum(p.quote.principal for p in folded_prepayments),
            prepayments=pruned.prepayments + len(folded_prepayments),
            last_allocation=max([pruned.last_allocation, *dropped]))
        self.head = self.head[len(folded):]
        self.allocations = kept_allocations
        self.reversals = [r for r in self.reversals if r.allocation_number in kept_numbers]
        self.crystallisations = [c for c in self.crystallisations if c.on > through]
        self.prepayments = [p for p in self.prepayments if p.quote.on > through]
        self.rate_changes = [c for c in self.rate_changes if c.effective_on > through]
        first_live = self.head[0].due_on if self.head else None
        self.waivers = [w for w in self.waivers
                        if w.end_on > through or (first_live is not None and w.end_on >= first_live)]

    def _unbuild_future(self) -> None:
        """Unpaid instalments due after the book's date, at the last rate, go back into the tail."""
        if self.tail is not None or not self.head:
            return
        rate, start = self.head[-1].annual_rate, len(self.head)
        while start > 0:
            account = self.head[start - 1]
            if account.paid or account.annual_rate != rate or account.due_on <= self.last_on:
                break
            start -= 1
        if start == len(self.head):
            return
        rows = [(_fen_of(a.instalment.principal), _fen_of(a.instalment.interest)) for a in self.head[start:]]
        try:
            tail = ScheduleTail.from_rows(self.head[start].number, rows, rate)
        except TailError:
            return  # not one recurrence (it cannot happen for schedules the book makes): stay built
        self.head, self.tail = self.head[:start], tail

    # -- invariants -------------------------------------------------------------------------
    def check_invariants(self) -> None:
        """The book's own consistency; a failure is a bug and must stop the ledger.

        One pass over plain Decimals: it runs after every operation, also on every load."""
        scheduled = self.pruned.principal.amount
        for expected, account in enumerate(self.head, self.pruned.count + 1):
            instalment = account.instalment
            assert instalment.number == expected, "instalments are numbered 1..n without gaps"
            if account.paid:
                assert account.interest_paid.amount <= instalment.interest.amount, "never paid beyond the interest"
                assert account.principal_paid.amount <= instalment.principal.amount, "never paid beyond the principal"
            scheduled += instalment.principal.amount
        tail = self.tail
        if tail is not None:
            assert tail.next_number == self.pruned.count + len(self.head) + 1, "the tail goes on from the last built"
            assert tail.months_left > 0, "an exhausted tail is dropped"
            assert tail.outstanding > 0, "an unbuilt instalment still has principal to repay"
            scheduled += Decimal(tail.outstanding).scaleb(-2)
        prepaid = self.pruned.prepaid + Money.sum(p.quote.principal for p in self.prepayments)
        paid_off = self.payoff.quote.principal if self.payoff else ZERO
        assert scheduled + prepaid.amount + paid_off.amount == self.terms.principal.amount, "principal is conserved"
        assert ZERO <= self.penalty_paid <= self.penalty_charged, "penalty paid within penalty charged"
