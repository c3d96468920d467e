"""The data of the documents members print (ST-1): plain frozen dataclasses, no database.

An :class:`AccountStatement` is the 个人账户明细 / 缴存明细 of one fund account over a period, a
:class:`RepaymentStatement` the 还款明细 of one loan, a :class:`ContributionCertificate` the
缴存证明 of one member as of a date. Read models fill them; the renderers in
:mod:`ledger.reports.render_json` and :mod:`ledger.reports.pdf` only present them. Each class
checks its own invariants when built (running balances chain, sources add up to what was
paid, OFF-5 offset lines carry reason 06 and the loan number, sizes stay under their
maximums) and raises :class:`DocumentError` naming the field, so a wrong document is never
printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

from ledger.money import ZERO, Money

STATEMENT_LINES_MAX = 3000  # one statement; a longer history is printed period by period
REPAYMENT_INSTALMENTS_MAX = 360  # LN-1: a loan term is at most 360 months
TEXT_CHARS_MAX = 120  # names, employer, references
CODE_CHARS_MAX = 64  # account and loan numbers, serials, certificate number, verification code
MONTHS_PAID_MAX = 12 * 80  # a working life
FUND_LOANS_USED_MAX = 99
DAYS_OVERDUE_MAX = 366 * 40
ID_NUMBER_SHOWN_HEAD = 4
ID_NUMBER_SHOWN_TAIL = 4
OFFSET_REASON_CODE = "06"  # OFF-5: a monthly offset deduction is a withdrawal with reason 06
PERIOD_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class DocumentError(ValueError):
    """A document's data breaks an invariant; it is refused before anything is rendered."""

    def __init__(self, field: str, problem: str, rule: str = "ST-1"):
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule} {problem}")


class _Labelled(Enum):
    """An enum whose members carry a code for machines and a label in Chinese for people."""

    def __init__(self, code: str, label_zh: str, *_rest: Any) -> None:
        self.code = code
        self.label_zh = label_zh


class EntryKind(_Labelled):
    """The kind of an account statement line; ``side`` is where a non-reversed line posts."""

    REMITTANCE = ("REMITTANCE", "汇缴", "credit")
    BACK_PAYMENT = ("BACK_PAYMENT", "补缴", "credit")
    INTEREST = ("INTEREST", "结息", "credit")
    TRANSFER_IN = ("TRANSFER_IN", "转入", "credit")
    WITHDRAWAL = ("WITHDRAWAL", "提取", "debit")
    OFFSET = ("OFFSET", "冲还贷", "debit")
    STANDING_WITHDRAWAL = ("STANDING_WITHDRAWAL", "委托提取", "debit")
    COURT_DEDUCTION = ("COURT_DEDUCTION", "司法扣划", "debit")
    TRANSFER_OUT = ("TRANSFER_OUT", "转出", "debit")
    INTEREST_ADJUSTMENT = ("INTEREST_ADJUSTMENT", "利息调整", "either")
    PAYOUT_RETURNED = ("PAYOUT_RETURNED", "退回", "credit")
    RECOVERY = ("RECOVERY", "追回", "credit")

    def __init__(self, code: str, label_zh: str, side: str) -> None:
        super().__init__(code, label_zh)
        self.side = side


class RepaymentMethod(_Labelled):
    EQUAL_INSTALMENT = ("EQUAL_INSTALMENT", "等额本息")
    EQUAL_PRINCIPAL = ("EQUAL_PRINCIPAL", "等额本金")


class AccountStatus(_Labelled):
    """ACC-1 national export codes of a fund account's state."""

    NORMAL = ("01", "正常")
    SEALED = ("02", "封存")
    CLOSED_MERGED = ("03", "合并销户")
    CLOSED_TRANSFERRED_OUT = ("04", "外部转出销户")
    CLOSED_WITHDRAWN = ("05", "提取销户")
    FROZEN = ("06", "冻结")


# -- checks shared by the documents ------------------------------------------


def _check_text(field: str, value: Any, chars_max: int = TEXT_CHARS_MAX, *, required: bool = True) -> None:
    if not isinstance(value, str):
        raise DocumentError(field, f"must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise DocumentError(field, "is required")
    if len(value) > chars_max:
        raise DocumentError(field, f"is longer than {chars_max} characters")
    if any(ord(char) < 0x20 for char in value):
        raise DocumentError(field, "holds control characters")


def _check_money(field: str, value: Any) -> None:
    if not isinstance(value, Money):
        raise DocumentError(field, f"must be Money, got {type(value).__name__}", "MNY-1")
    if value.is_negative:
        raise DocumentError(field, f"is negative ({value})", "MNY-1")


def _check_date(field: str, value: Any) -> None:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise DocumentError(field, f"must be a date, got {type(value).__name__}", "MNY-4")


def _check_count(field: str, value: Any, count_max: int, count_min: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DocumentError(field, f"must be an int, got {type(value).__name__}")
    if not count_min <= value <= count_max:
        raise DocumentError(field, f"must be between {count_min} and {count_max}, got {value}")


def _check_flag(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise DocumentError(field, f"must be True or False, got {type(value).__name__}")


def _check_percent(field: str, value: Any) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise DocumentError(field, "must be a finite Decimal percent such as Decimal('12')", "MNY-3")
    if not Decimal(0) <= value <= Decimal(100):
        raise DocumentError(field, f"must be between 0 and 100 percent, got {value}", "MNY-3")


def _check_period(field: str, value: Any) -> None:
    if not isinstance(value, str) or not PERIOD_PATTERN.match(value):
        raise DocumentError(field, f"must be a period YYYY-MM, got {value!r}", "MNY-4")


def _check_enum(field: str, value: Any, kind: type[Enum]) -> None:
    if not isinstance(value, kind):
        raise DocumentError(field, f"must be a {kind.__name__}, got {type(value).__name__}")


def _money_fields_sum(items: tuple[Any, ...], name: str) -> Money:
    return Money.sum(getattr(item, name) for item in items)


def mask_id_number(id_number: str) -> str:
    """Show the first and last four characters of an id number: 1101**********1234."""
    _check_text("id_number", id_number, CODE_CHARS_MAX)
    shown = ID_NUMBER_SHOWN_HEAD + ID_NUMBER_SHOWN_TAIL
    if len(id_number) <= shown:
        return "*" * len(id_number)
    hidden = len(id_number) - shown
    return id_number[:ID_NUMBER_SHOWN_HEAD] + "*" * hidden + id_number[-ID_NUMBER_SHOWN_TAIL:]


# -- account statement (个人账户明细 / 缴存明细) --------------------------------


@dataclass(frozen=True)
class StatementLine:
    """One posting on a fund account; a reversal (COR-1) mirrors its original and is marked 冲正."""

    value_date: date
    recorded_at: datetime
    kind: EntryKind
    debit: Money
    credit: Money
    balance: Money
    reason_code: str = ""
    reference: str = ""
    is_reversal: bool = False
    serial: str = ""
    reverses_serial: str = ""

    def __post_init__(self) -> None:
        _check_date("value_date", self.value_date)
        if not isinstance(self.recorded_at, datetime):
            raise DocumentError("recorded_at", "must be a datetime", "MNY-4")
        _check_enum("kind", self.kind, EntryKind)
        for name in ("debit", "credit", "balance"):
            _check_money(name, getattr(self, name))
        for name in ("reason_code", "serial", "reverses_serial"):
            _check_text(name, getattr(self, name), CODE_CHARS_MAX, required=False)
        _check_text("reference", self.reference, required=False)
        _check_flag("is_reversal", self.is_reversal)
        self._check_side()
        self._check_offset()

    def _check_side(self) -> None:
        if self.debit.is_zero == self.credit.is_zero:
            raise DocumentError("debit/credit", "exactly one of debit and credit must be above zero")
        side = "debit" if self.credit.is_zero else "credit"
        expected = self.kind.side
        if expected != "either" and self.is_reversal:
            expected = "credit" if expected == "debit" else "debit"  # COR-1: sides swapped
        if expected not in ("either", side):
            raise DocumentError("debit/credit", f"a {self.kind.code} line posts as a {expected}", "COR-1")
        if self.reverses_serial and not self.is_reversal:
            raise DocumentError("reverses_serial", "only a reversal names an original", "COR-1")

    def _check_offset(self) -> None:
        if self.kind is not EntryKind.OFFSET:
            return
        if self.reason_code != OFFSET_REASON_CODE:
            raise DocumentError("reason_code", f"an offset line has reason {OFFSET_REASON_CODE}", "OFF-5")
        if not self.reference.strip():
            raise DocumentError("reference", "an offset line names its loan number", "OFF-5")

    @property
    def net_change(self) -> Money:
        return self.credit - self.debit


@dataclass(frozen=True)
class AccountStatement:
    """个人账户明细: lines in value-date then recorded order with running and closing balance."""

    title_zh: ClassVar[str] = "住房公积金个人账户明细"
    centre_name: str
    member_name: str
    id_number_masked: str
    account_number: str
    employer_name: str
    period_from: date
    period_to: date
    opening_balance: Money
    lines: tuple[StatementLine, ...]
    closing_balance: Money
    issued_on: date

    def __post_init__(self) -> None:
        for name in ("centre_name", "member_name", "employer_name"):
            _check_text(name, getattr(self, name))
        _check_text("account_number", self.account_number, CODE_CHARS_MAX)
        _check_text("id_number_masked", self.id_number_masked, CODE_CHARS_MAX)
        if "*" not in self.id_number_masked:
            raise DocumentError("id_number_masked", "a statement shows the id number masked")
        for name in ("period_from", "period_to", "issued_on"):
            _check_date(name, getattr(self, name))
        if self.period_from > self.period_to:
            raise DocumentError("period_from", "is after period_to")
        _check_money("opening_balance", self.opening_balance)
        _check_money("closing_balance", self.closing_balance)
        self._check_lines()

    def _check_lines(self) -> None:
        if not isinstance(self.lines, tuple):
            raise DocumentError("lines", "must be a tuple of StatementLine")
        if len(self.lines) > STATEMENT_LINES_MAX:
            raise DocumentError("lines", f"more than {STATEMENT_LINES_MAX}; print a shorter period")
        balance = self.opening_balance
        previous: StatementLine | None = None
        for index, line in enumerate(self.lines):
            if not isinstance(line, StatementLine):
                raise DocumentError(f"lines[{index}]", "must be a StatementLine")
            if not self.period_from <= line.value_date <= self.period_to:
                raise DocumentError(f"lines[{index}].value_date", "is outside the period")
            if previous and (line.value_date, line.recorded_at) < (previous.value_date, previous.recorded_at):
                raise DocumentError(f"lines[{index}]", "out of value-date then recorded order")
            balance = balance + line.net_change
            if line.balance != balance:
                raise DocumentError(f"lines[{index}].balance", f"running balance should be {balance}")
            previous = line
        if self.closing_balance != balance:
            raise DocumentError("closing_balance", f"should be {balance}")

    @property
    def total_debit(self) -> Money:
        return _money_fields_sum(self.lines, "debit")

    @property
    def total_credit(self) -> Money:
        return _money_fields_sum(self.lines, "credit")


# -- repayment statement (还款明细) --------------------------------------------

INSTALMENT_MONEY_FIELDS = (
    "due_principal",
    "due_interest",
    "paid_principal",
    "paid_interest",
    "paid_penalty",
    "from_borrower_fund",
    "from_spouse_fund",
    "from_card",
    "penalty",
)


@dataclass(frozen=True)
class RepaymentInstalment:
    """One instalment: what fell due at which rate (LN-2: a 1 January repricing changes it from the first
    period starting on or after that day), what was paid and from where (OFF-5), overdue days and 罚息."""

    number: int
    due_on: date
    due_principal: Money
    due_interest: Money
    paid_on: date | None = None
    paid_principal: Money = ZERO
    paid_interest: Money = ZERO
    paid_penalty: Money = ZERO
    from_borrower_fund: Money = ZERO
    from_spouse_fund: Money = ZERO
    from_card: Money = ZERO
    days_overdue: int = 0
    penalty: Money = ZERO
    annual_rate: Decimal | None = None

    def __post_init__(self) -> None:
        _check_count("number", self.number, REPAYMENT_INSTALMENTS_MAX, count_min=1)
        _check_date("due_on", self.due_on)
        if self.annual_rate is not None:
            _check_percent("annual_rate", self.annual_rate)
        for name in INSTALMENT_MONEY_FIELDS:
            _check_money(name, getattr(self, name))
        _check_count("days_overdue", self.days_overdue, DAYS_OVERDUE_MAX)
        self._check_paid()

    def _check_paid(self) -> None:
        where = f"instalment {self.number}"
        if self.paid_on is not None:
            _check_date("paid_on", self.paid_on)
        if self.paid_principal > self.due_principal or self.paid_interest > self.due_interest:
            raise DocumentError(where, "paid more principal or interest than fell due", "LN-5")
        if self.paid_penalty > self.penalty:
            raise DocumentError(where, "paid more penalty than was charged", "LN-5")
        sources = self.from_borrower_fund + self.from_spouse_fund + self.from_card
        if sources != self.paid_total:
            raise DocumentError(where, f"sources add up to {sources}, paid {self.paid_total}", "OFF-5")
        if self.paid_on is None and not self.paid_total.is_zero:
            raise DocumentError(where, "a paid instalment needs its paid_on date")

    @property
    def due_total(self) -> Money:
        return self.due_principal + self.due_interest

    @property
    def paid_total(self) -> Money:
        return self.paid_principal + self.paid_interest + self.paid_penalty


@dataclass(frozen=True)
class RepaymentStatement:
    """还款明细 of one fund loan: header terms and one row per instalment.

    ``annual_rate`` is the rate in force now (ST-1: after a 1 January repricing, the new one), each
    instalment carries the rate it bears, and ``disbursement_annual_rate`` the rate the loan started at.
    """

    title_zh: ClassVar[str] = "个人住房公积金贷款还款明细"
    centre_name: str
    loan_number: str
    borrower_name: str
    principal: Money
    annual_rate: Decimal
    term_months: int
    method: RepaymentMethod
    instalments: tuple[RepaymentInstalment, ...]
    issued_on: date
    disbursement_annual_rate: Decimal | None = None

    def __post_init__(self) -> None:
        _check_text("centre_name", self.centre_name)
        _check_text("borrower_name", self.borrower_name)
        _check_text("loan_number", self.loan_number, CODE_CHARS_MAX)
        _check_money("principal", self.principal)
        _check_percent("annual_rate", self.annual_rate)
        if self.disbursement_annual_rate is not None:
            _check_percent("disbursement_annual_rate", self.disbursement_annual_rate)
        _check_count("term_months", self.term_months, REPAYMENT_INSTALMENTS_MAX, count_min=1)
        _check_enum("method", self.method, RepaymentMethod)
        _check_date("issued_on", self.issued_on)
        self._check_instalments()

    def _check_instalments(self) -> None:
        if not isinstance(self.instalments, tuple):
            raise DocumentError("instalments", "must be a tuple of RepaymentInstalment")
        if len(self.instalments) > REPAYMENT_INSTALMENTS_MAX:
            raise DocumentError("instalments", f"more than {REPAYMENT_INSTALMENTS_MAX}")
        previous: RepaymentInstalment | None = None
        for index, instalment in enumerate(self.instalments):
            if not isinstance(instalment, RepaymentInstalment):
                raise DocumentError(f"instalments[{index}]", "must be a RepaymentInstalment")
            if previous and (instalment.number <= previous.number or instalment.due_on < previous.due_on):
                raise DocumentError(f"instalments[{index}]", "out of instalment order")
            previous = instalment

    def totals(self) -> dict[str, Money]:
        """Column totals over the instalments, one per money field."""
        return {name: _money_fields_sum(self.instalments, name) for name in INSTALMENT_MONEY_FIELDS}


# -- contribution certificate (缴存证明) -----------------------------------------


@dataclass(frozen=True)
class ContributionCertificate:
    """缴存证明 as of a date, with every field ST-1 lists.

    ``id_number`` is printed as given: the caller decides whether the reader of this
    certificate (a bank, a housing office) sees it whole or masked. Ratios are percent
    Decimals (``Decimal("12")`` is 12 %); ``monthly_amount`` is employer plus member share.
    ``paid_up_to`` is the 缴至年月 period ``YYYY-MM``.
    """

    title_zh: ClassVar[str] = "住房公积金缴存证明"
    centre_name: str
    member_name: str
    id_number: str
    account_number: str
    employer_name: str
    opened_on: date
    account_state: AccountStatus
    contribution_base: Money
    employer_ratio: Decimal
    member_ratio: Decimal
    monthly_amount: Money
    paid_up_to: str
    months_paid_total: int
    months_paid_consecutive: int
    six_months_before_continuous: bool
    balance: Money
    has_outstanding_fund_loan: bool
    fund_loans_used: int
    has_fraud_record: bool
    as_of: date
    issued_on: date
    certificate_number: str
    verification_code: str

    def __post_init__(self) -> None:
        for name in ("centre_name", "member_name", "employer_name"):
            _check_text(name, getattr(self, name))
        for name in ("id_number", "account_number", "certificate_number", "verification_code"):
            _check_text(name, getattr(self, name), CODE_CHARS_MAX)
        for name in ("opened_on", "as_of", "issued_on"):
            _check_date(name, getattr(self, name))
        _check_enum("account_state", self.account_state, AccountStatus)
        for name in ("contribution_base", "monthly_amount", "balance"):
            _check_money(name, getattr(self, name))
        _check_percent("employer_ratio", self.employer_ratio)
        _check_percent("member_ratio", self.member_ratio)
        _check_period("paid_up_to", self.paid_up_to)
        for name in ("six_months_before_continuous", "has_outstanding_fund_loan", "has_fraud_record"):
            _check_flag(name, getattr(self, name))
        self._check_counts_and_dates()

    def _check_counts_and_dates(self) -> None:
        _check_count("months_paid_total", self.months_paid_total, MONTHS_PAID_MAX)
        _check_count("months_paid_consecutive", self.months_paid_consecutive, self.months_paid_total)
        _check_count("fund_loans_used", self.fund_loans_used, FUND_LOANS_USED_MAX)
        if self.has_outstanding_fund_loan and self.fund_loans_used == 0:
            raise DocumentError("fund_loans_used", "an outstanding fund loan counts as a loan used")
        if not self.opened_on <= self.as_of <= self.issued_on:
            raise DocumentError("as_of", "must fall between opened_on and issued_on")

