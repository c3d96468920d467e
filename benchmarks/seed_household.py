"""One seeded household's life, day by day, through the ledger's own aggregate methods.

A household is a borrower (often with a paying spouse), their fund accounts with monthly contributions
from ``history_years`` back, a loan a few years into repayment paid on time by card, and a signed offset
mandate (按月冲还贷). What it is made of depends on its *shape* — the numbers (base, principal, term, how
far into repayment, whether a spouse pays, whether the purchase withdrawal left the accounts low) —
and its *identity* (ids, names, cards, loan number). Two households of one shape differ in identity only,
which is what lets ``benchmarks.seed_store`` write the second from the first's stored rows.

:class:`Household` applies the household's steps (open, contribute, apply, approve, disburse, pay) with the
arguments the ledger's commands pass; :class:`MemoryJobs` applies what the daily and yearly jobs do to it
(``daily_loan_update``'s accrual, ``reprice_loans`` on 1 January, ``settle_interest`` after 30 June) in
memory, as their command bodies do. ``benchmarks.seed_commands`` runs the same steps with the jobs run by
the real commands over a store; the test ``tests/test_bulk_seeder.py`` checks both write the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.aggregates.documents import CENTRE_SERIAL_SCOPE, DailySequence, Payout, SerialRef
from ledger.aggregates.fund_account import CLOSED, FundAccount
from ledger.aggregates.loan import ACTIVE, Loan
from ledger.aggregates.offset import OffsetMandate
from ledger.aggregates.parties import Member
from ledger.application import CHINA_TZ
from ledger.calendar import WorkingCalendar
from ledger.interest import interest_year
from ledger.loan_math import due_date
from ledger.money import Money
from ledger.sampledata import card_number, credit_code, resident_id
from ledger.services.accounts import derive_account_no, share
from ledger.services.offset import deduction_window

RUN_DAY = date(2025, 6, 16)  # a Monday; the window also covers Saturday 14th and Sunday 15th (LN-4)
DUE_DAY = 16
RECORDED_HOUR = 18  # every step of a day is recorded at 18:00 China time (FixedClock.set_day's default)
EMPLOYERS = 20
EMPLOYER_CODE_FIRST = 9000
BIRTH_DATES = [date(1970 + y, 1 + m, 1 + d) for y in range(25) for m in range(12) for d in range(28)]
HISTORY_YEARS_MAX = 30  # accounts open after the last birth date above (seed_templates relies on it)
SPOUSE_EVERY, SPOUSE_SHARE = 10, 7  # a shape number % 10 below 7 has a paying spouse (70 %)
LOW_BALANCE_EVERY = 5  # one shape in five withdrew most of the balance for the purchase and left work
PRINCIPAL_STEPS, BASE_STEPS = 13, 9
EQUAL_PRINCIPAL_EVERY = 10
KEEP_STEPS = 1500
APPLIED_DAYS_BEFORE = 20
APPROVED_DAYS_AFTER = 2
CONTRIBUTION_DAY = 10
CONTRIBUTION_RATIO = Decimal("12")  # the seeded employers' ratio (both shares)
SPOUSE_BASE = Money("5000.00")
PAYEE = "卖方"
CARD_BANK = "ICBC"

# Step names, in the order they run on one day (jobs run before any step).
OPEN, CONTRIBUTE, APPLY, APPROVE, DISBURSE, PAY = "open", "contribute", "apply", "approve", "disburse", "pay"
STEP_ORDER = (OPEN, CONTRIBUTE, APPLY, APPROVE, DISBURSE, PAY)


def add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    return date(total // 12, total % 12 + 1, day.day)


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def recorded_at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, RECORDED_HOUR, tzinfo=CHINA_TZ)


def employer_code(number: int) -> str:
    return credit_code(EMPLOYER_CODE_FIRST + number)


@dataclass(frozen=True)
class Shape:
    """The numbers of a household: everything but who its members are."""

    number: int
    months_back: int
    months: int
    principal: Money
    base: Money
    method: str
    low: bool
    spouse: bool
    keep: Money
    employer: int


@dataclass(frozen=True)
class SeedPlan:
    """What a seeded store holds: household ``index`` has shape ``index % shape_count``."""

    run_day: date = RUN_DAY
    history_years: int = 10
    months_back: tuple[int, int] = (24, 60)  # how far into repayment the loans are (from, to exclusive)
    terms_months: tuple[int, ...] = (360, 360, 240)
    shapes: int | None = None  # distinct shapes (default: the period of the shape formulas)

    def __post_init__(self) -> None:
        low, high = self.months_back
        assert 1 <= self.history_years <= HISTORY_YEARS_MAX, self.history_years
        assert 1 <= low < high, self.months_back
        # the loan is applied for after the accounts opened, and contributions stop before it for low ones
        assert add_months(self.run_day.replace(day=DUE_DAY), -(high - 1)) - timedelta(days=APPLIED_DAYS_BEFORE) \
            > add_months(self.opened, 1), f"{self.history_years} years of history cannot hold loans {high} months old"
        assert self.shapes is None or self.shapes >= 1, self.shapes

    @property
    def opened(self) -> date:
        return add_months(self.run_day.replace(day=1), -12 * self.history_years)

    @property
    def shape_count(self) -> int:
        if self.shapes is not None:
            return self.shapes
        low, high = self.months_back
        periods = (high - low, len(self.terms_months), PRINCIPAL_STEPS, BASE_STEPS, SPOUSE_EVERY,
                   LOW_BALANCE_EVERY, EQUAL_PRINCIPAL_EVERY, EMPLOYERS)
        return math.lcm(*periods)

    def shape(self, index: int) -> Shape:
        number = index % self.shape_count
        low, high = self.months_back
        return Shape(number=number, months_back=low + (number * 7) % (high - low),
                     months=self.terms_months[number % len(self.terms_months)],
                     principal=Money(f"{200_000 + (number % PRINCIPAL_STEPS) * 50_000}.00"),
                     base=Money(f"{4000 + (number % BASE_STEPS) * 2000}.00"),
                     method="equal-principal" if number % EQUAL_PRINCIPAL_EVERY == 9 else "equal-instalment",
                     low=number % LOW_BALANCE_EVERY == 0, spouse=number % SPOUSE_EVERY < SPOUSE_SHARE,
                     keep=Money(f"{300 + (number * 37) % KEEP_STEPS}.00"), employer=number % EMPLOYERS)

    def disbursed_on(self, shape: Shape) -> date:
        return add_months(self.run_day.replace(day=DUE_DAY), -shape.months_back)

    def applied_on(self, shape: Shape) -> date:
        return self.disbursed_on(shape) - timedelta(days=APPLIED_DAYS_BEFORE)

    def order(self, indices: Any) -> list[int]:
        """The order households act in on a day (and are written in): shape by shape, then by index."""
        return sorted(indices, key=lambda index: (index % self.shape_count, index))


@dataclass(frozen=True)
class Identity:
    """Who a household is: everything but its numbers."""

    index: int
    borrower_number: str
    spouse_number: str
    borrower_name: str
    spouse_name: str
    birth_date: date
    card: str
    loan_no: str

    @classmethod
    def of(cls, plan: SeedPlan, index: int) -> "Identity":
        birth = BIRTH_DATES[index % len(BIRTH_DATES)]
        sequence = index // len(BIRTH_DATES)
        return cls(index=index, borrower_number=resident_id(birth, sequence, True),
                   spouse_number=resident_id(birth, sequence, False), borrower_name=f"借{index}",
                   spouse_name=f"配{index}", birth_date=birth, card=card_number(index + 1),
                   loan_no=f"DK{plan.applied_on(plan.shape(index)):%Y%m%d}{index:07d}")

    @property
    def borrower_account_no(self) -> str:
        return derive_account_no(self.borrower_number)

    @property
    def spouse_account_no(self) -> str:
        return derive_account_no(self.spouse_number)


class SequenceBook:
    """The centre's daily serial sequences (BNK-2) one run hands out from, kept between saves."""

    def __init__(self, ledger: Any = None):
        self.ledger = ledger  # None: every sequence starts empty (a template); else read from the store once
        self.sequences: dict[date, DailySequence] = {}
        self.taken: list[tuple[date, str]] = []

    def take(self, day: date) -> tuple[str, DailySequence]:
        sequence = self.sequences.get(day)
        if sequence is None:
            found = self.ledger.find(DailySequence.create_id(CENTRE_SERIAL_SCOPE, day)) if self.ledger else None
            sequence = self.sequences[day] = found or DailySequence(scope=CENTRE_SERIAL_SCOPE, day=day)
        (serial,) = sequence.take(1)
        self.taken.append((day, serial))
        return serial, sequence


@dataclass
class Household:
    """One household's aggregates by role, changed by the real aggregate methods (see module docstring)."""

    ledger: Any  # the Ledger: policy, terms, interest and base rules (no store access here)
    plan: SeedPlan
    index: int
    employer_id: UUID
    serials: SequenceBook
    aggregates: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> Shape:
        return self.plan.shape(self.index)

    @property
    def who(self) -> Identity:
        return Identity.of(self.plan, self.index)

    def accounts(self) -> list[FundAccount]:
        return [a for a in (self.aggregates.get("borrower_account"), self.aggregates.get("spouse_account")) if a]

    # -- the calendar of the household --------------------------------------------------------------
    def schedule(self) -> dict[date, list[tuple[str, Any]]]:
        """Each day with steps, and its steps in order: (name, argument)."""
        plan, shape = self.plan, self.shape
        disbursed = plan.disbursed_on(shape)
        steps: list[tuple[date, str, Any]] = [(plan.opened, OPEN, None)]
        until = disbursed.replace(day=1) if shape.low else plan.run_day
        month = plan.opened
        while month < until:
            day = month.replace(day=CONTRIBUTION_DAY)
            if day < plan.run_day:
                steps.append((day, CONTRIBUTE, period_of(month)))
            month = add_months(month, 1)
        applied = plan.applied_on(shape)
        steps += [(applied, APPLY, None), (applied + timedelta(days=APPROVED_DAYS_AFTER), APPROVE, None),
                  (disbursed, DISBURSE, None)]
        calendar = WorkingCalendar()
        window_start = min(deduction_window(plan.run_day, calendar))
        for number, due_on in self.due_dates():
            paid_on = calendar.next_working_day(due_on)
            if due_on < window_start and paid_on < plan.run_day:  # paid by card on its deduction day
                steps.append((paid_on, PAY, number))
        days: dict[date, list[tuple[str, Any]]] = {}
        for day, name, argument in sorted(steps, key=lambda s: (s[0], STEP_ORDER.index(s[1]))):
            days.setdefault(day, []).append((name, argument))
        return days

    def due_dates(self) -> list[tuple[int, date]]:
        """The loan's instalment due dates before the run day (LN-4: the disbursement day of each month)."""
        disbursed = self.plan.disbursed_on(self.shape)
        terms = self.ledger._terms(_LoanTerms(self.shape), disbursed, self.ledger.policy.at(disbursed))
        found = []
        for number in range(1, self.shape.months + 1):
            due_on = due_date(disbursed, number, terms["due_day"])
            if due_on >= self.plan.run_day:
                break
            found.append((number, due_on))
        return found

    # -- steps ------------------------------------------------------------------------------------
    def run(self, day: date, steps: list[tuple[str, Any]]) -> list[Any]:
        """Apply the day's steps; returns every aggregate they touched (with new events)."""
        touched: list[Any] = []
        for name, argument in steps:
            touched += getattr(self, f"_{name}")(day, argument)
        return touched

    def _open(self, day: date, _: Any) -> list[Any]:
        who, touched = self.who, []
        members = [("borrower", who.borrower_number, who.borrower_name, self.shape.base)]
        if self.shape.spouse:
            members.append(("spouse", who.spouse_number, who.spouse_name, SPOUSE_BASE))
        for role, number, name, base in members:
            member = Member.register(number, name, None, None, self.employer_id, derive_account_no(number), day)
            account = FundAccount(account_no=member.account_no, member_id=member.id, employer_id=self.employer_id,
                                  opened_on=day)
            self.ledger._apply_base(account, period_of(day), str(base), day)  # ACC: base within floor and cap
            self.aggregates[role], self.aggregates[f"{role}_account"] = member, account
            touched += [member, account]
        if self.shape.spouse:
            self.aggregates["borrower"].link_spouse(self.aggregates["spouse"], day)
        return touched

    def _contribute(self, day: date, period: str) -> list[Any]:
        policy = self.ledger.policy.at(day)
        for account in self.accounts():
            part = share(account.base_for(period), CONTRIBUTION_RATIO, policy.contribution.share_rounding)
            account.credit_contribution(period, "remittance", part, part, day, f"seed:{period}",
                                        policy.bank.centre_account, f"seed:{account.account_no}:{period}")
        return self.accounts()

    def _apply(self, day: date, _: Any) -> list[Any]:
        shape, who, borrower = self.shape, self.who, self.aggregates["borrower"]
        spouse = self.aggregates.get("spouse")
        borrower.set_card(CARD_BANK, who.card)
        loan = Loan(loan_no=who.loan_no, borrower_id=borrower.id, spouse_id=spouse.id if spouse else None,
                    principal=shape.principal, months=shape.months, method=shape.method, second_home=False,
                    price=shape.principal.times(Decimal(2)), monthly_income=Money("30000.00"), bank=CARD_BANK,
                    card=borrower.card, applied_on=day, eligibility={"seeded": True}, borrower_name=borrower.name)
        members = [m for m in (borrower, spouse) if m is not None]
        for member in members:  # LN-1: as apply_for_loan marks the household
            member.mark_loan(loan_id=str(loan.id), mark="pending")
        self.aggregates["loan"] = loan
        return [loan, *members]

    def _approve(self, day: date, _: Any) -> list[Any]:
        self.aggregates["loan"].approve(day)
        return [self.aggregates["loan"]]

    def _disburse(self, day: date, _: Any) -> list[Any]:
        touched = self._withdraw_and_seal(day) if self.shape.low else []
        loan = self.aggregates["loan"]
        policy = self.ledger.policy.at(day)
        payout, paid = self._paid_out("loan", f"loan:{loan.loan_no}", None, loan.principal, day,
                                      f"disbursement:{loan.loan_no}")
        loan.disburse(day, self.ledger._terms(loan, day, policy), payout.serial)
        members = [m for m in (self.aggregates["borrower"], self.aggregates.get("spouse")) if m is not None]
        for member in members:
            member.mark_loan(loan_id=str(loan.id), mark="outstanding")
        return [*touched, *paid, loan, *members, *self._mandate(day)]

    def _withdraw_and_seal(self, day: date) -> list[Any]:
        """The purchase withdrawal (WD-1/2, as the withdraw command passes it) left little; then sealed."""
        policy, touched = self.ledger.policy.at(day), []
        rule = policy.withdrawal.kind("purchase")
        retained = policy.account.retained_balance_min
        for role, account in zip(("borrower", "spouse"), self.accounts()):
            amount = account.balance - self.shape.keep
            if amount.amount > 0:
                posting = f"wd:seed:{account.account_no}"
                evidence = {"contract_number": f"HT{self.who.loan_no}",
                            "price": str(self.shape.principal.times(Decimal(2))),
                            "loan_amount": str(self.shape.principal), "contract_date": day.isoformat()}
                account.withdraw(rule.kind, rule.code, amount, day, evidence, retained, posting, PAYEE,
                                 policy_used={"retained_balance_min": str(retained)})
                touched += self._paid_out(f"wd:{role}", posting, account.account_no, amount, day,
                                          f"withdrawal:{rule.code}")[1]
            account.seal(day, "left employer")
            touched.append(account)
        return touched

    def _paid_out(self, role: str, posting_id: str, account_no: str | None, amount: Money, day: date,
                  purpose: str) -> tuple[Payout, list[Any]]:
        """A payout as ``instruct_payout`` makes it, paid by the bank the same day."""
        serial, sequence = self.serials.take(day)
        bank_account = self.ledger.policy.at(day).bank.centre_account
        payout = Payout(posting_id=posting_id, account_no=account_no, payee=PAYEE, amount=amount, value_date=day,
                        serial=serial, purpose=purpose, bank_account=bank_account)
        ref = SerialRef(serial=serial, kind="payout", target_id=payout.id, detail={"purpose": purpose})
        payout.settle(True, day, f"SEED{serial}")
        self.aggregates[f"payout:{role}"], self.aggregates[f"serial:{role}"] = payout, ref
        return payout, [payout, sequence, ref]

    def _mandate(self, day: date) -> list[Any]:
        """OFF-1 as create_mandate and sign_mandate write it: the agreement set on each payer account."""
        loan = self.aggregates["loan"]
        payers = [("borrower", self.aggregates["borrower"], self.aggregates["borrower_account"])]
        if self.shape.spouse:
            payers.append(("spouse", self.aggregates["spouse"], self.aggregates["spouse_account"]))
        for _role, _member, account in payers:
            account.set_agreement(agreement=f"offset:{loan.loan_no}")
        due_day = loan.terms.get("due_day") or loan.disbursed_on.day
        mandate = OffsetMandate(loan_no=loan.loan_no, loan_id=loan.id, drafted_on=day, due_day=due_day,
                                payers=[{"role": role, "member_id": str(m.id), "account_no": m.account_no}
                                        for role, m, _account in payers], number=1)
        loan.link_mandate(mandate_id=mandate.id)
        for _role, member, _account in payers:
            mandate.sign(member.id, day)
        self.aggregates["mandate"] = mandate
        return [mandate, loan, *[account for _r, _m, account in payers]]

    def _pay(self, day: date, number: int) -> list[Any]:
        loan = self.aggregates["loan"]
        due = loan.book.amount_due(day)
        if due.is_zero:
            return []
        loan.pay(due, day, "card", f"seed:{loan.loan_no}:{number}", self.ledger.policy.at(day).bank.centre_account)
        return [loan]


@dataclass(frozen=True)
class _LoanTerms:
    """What ``Ledger._terms`` reads of a loan, before the loan exists."""

    shape: Shape

    @property
    def principal(self) -> Money:
        return self.shape.principal

    @property
    def months(self) -> int:
        return self.shape.months

    @property
    def method(self) -> str:
        return self.shape.method

    second_home = False


# -- the jobs ---------------------------------------------------------------------------------------
def interest_year_ends(plan: SeedPlan, policy: Any) -> list[date]:
    """The 30 Junes whose settlement (INT-1, run the next day) precedes the run day, from the first year
    the policy has a rate for the whole of (the sample city's rates start on 2016-02-21)."""
    ends = []
    year_end = date(plan.opened.year, 6, 30)
    while year_end + timedelta(days=1) < plan.run_day:
        rules = policy.at(year_end).interest
        start = interest_year(year_end, rules.year_start_month)[0]
        if year_end >= plan.opened and any(rate.effective_from <= start for rate in rules.rates):
            ends.append(year_end)
        year_end = date(year_end.year + 1, 6, 30)
    return ends


def job_days(plan: SeedPlan, policy: Any, household: Household) -> dict[date, list[str]]:
    """The days the daily and yearly jobs change this household, and what runs: "reprice" (1 January),
    "interest" (1 July), "accrue" (each due date)."""
    days: dict[date, list[str]] = {}
    disbursed = plan.disbursed_on(household.shape)
    year = disbursed.year + 1
    while date(year, 1, 1) < plan.run_day:
        days.setdefault(date(year, 1, 1), []).append("reprice")
        year += 1
    for year_end in interest_year_ends(plan, policy):
        days.setdefault(year_end + timedelta(days=1), []).append("interest")
    for _number, due_on in household.due_dates():
        days.setdefault(due_on, []).append("accrue")
    return days


@dataclass
class MemoryJobs:
    """The jobs' command bodies (``ledger.services``) applied to one household in memory."""

    ledger: Any

    def run(self, household: Household, day: date, jobs: list[str]) -> None:
        for job in jobs:
            getattr(self, job)(household, day)

    def reprice(self, household: Household, on: date) -> None:
        """As ``reprice_loans``: a loan over a year moves to the rate in force on 1 January (LN-2)."""
        loan = household.aggregates.get("loan")
        if loan is None or loan.state != ACTIVE or loan.months <= 12 or loan.disbursed_on >= on:
            return
        rate = self.ledger.policy.at(on).loan.rate_on(on, months=loan.months, second_home=loan.second_home)
        loan.reprice(rate, on)

    def interest(self, household: Household, day: date) -> None:
        """As ``settle_interest``'s batch body, for the year that ended the day before (INT-1)."""
        end = day - timedelta(days=1)
        policy = self.ledger.policy.at(end)
        year_key = str(interest_year(end, policy.interest.year_start_month)[0].year)
        for account in household.accounts():
            done = account.interest_years.get(year_key)
            if account.state == CLOSED or (done and done["end"] >= end) or account.opened_on > end:
                continue
            result = self.ledger.interest_to(account, end, policy)
            account.settle_interest(result, f"int:{year_key}:{account.account_no}")

    def accrue(self, household: Household, on: date) -> None:
        """As ``daily_loan_update``: the interest that fell due (Dr 1102 / Cr 4001), defaults (LN-7)."""
        loan = household.aggregates.get("loan")
        if loan is None or loan.state != ACTIVE:
            return
        rules = self.ledger.policy.at(on).loan
        loan.accrue(on)
        status = loan.book.status(max(on, loan.book.last_on))
        if loan.defaulted_on is None and (status.missed_in_a_row >= rules.missed_in_row_max
                                          or status.missed_total >= rules.missed_total_max):
            loan.mark_defaulted(on=on, missed_in_a_row=status.missed_in_a_row, missed_total=status.missed_total)


def timeline(plan: SeedPlan, policy: Any, household: Household) -> list[tuple[date, list[str], list[tuple[str, Any]]]]:
    """Every day the household changes: (day, jobs, steps), in date order."""
    steps = household.schedule()
    jobs = job_days(plan, policy, household)
    return [(day, jobs.get(day, []), steps.get(day, [])) for day in sorted(set(steps) | set(jobs))]


def open_employers(ledger: Any) -> list[UUID]:
    """The employers households work for, opened by the ledger's command (once per store)."""
    ids = []
    for number in range(EMPLOYERS):
        code = employer_code(number)
        ledger.open_employer(code, f"基准单位{number}", "6222000000000000", date(2000, 1, 1), ratio="12")
        ids.append(ledger.employer(code).id)
    return ids
