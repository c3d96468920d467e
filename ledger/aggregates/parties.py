"""Employers (缴存单位, EMP-1) and members (缴存职工, ACC-4) as aggregates.

An employer's id derives from its unified social credit code (GB 32100,
checked with python-stdnum), a member's from the resident id (GB 11643). The
employer keeps its dated contribution ratios (调比) and deferrals (缓缴,
CON-3); the member keeps identity, employer link, spouse link (both sides
agree: the link is written on both aggregates in one atomic save), the
repayment card (LN-9) and the household's loan marks used by LN-1 and WD-4.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import event
from stdnum import luhn
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError as StdnumError

from ledger.aggregates.base import LedgerAggregate, derive_id
from ledger.aggregates.errors import (
    DeferralError,
    EmployerStateError,
    InvalidCreditCodeError,
    InvalidIdentityError,
    RatioOutOfRangeError,
    SpouseLinkError,
)

EMPLOYER_STATES = {"01": "正常", "02": "开户", "03": "缓缴", "04": "销户", "05": "封存"}


def check_credit_code(code: str) -> str:
    try:
        return uscc.validate(code)
    except StdnumError as exc:
        raise InvalidCreditCodeError(f"not a valid unified social credit code: {exc}", field="credit_code") from None


def check_resident_id(number: str) -> str:
    try:
        return ric.validate(number)
    except StdnumError as exc:
        raise InvalidIdentityError(f"not a valid resident id (GB 11643): {exc}", field="id_number") from None


def sex_from_resident_id(number: str) -> str:
    return "M" if int(number[16]) % 2 == 1 else "F"


def check_period(period: str, field: str = "period") -> str:
    try:
        year, month = period.split("-")
        if not period.isascii() or len(year) != 4 or len(month) != 2 or not 1 <= int(month) <= 12:
            raise ValueError
    except ValueError:
        raise InvalidIdentityError("a period is YYYY-MM", field=field, rule="CON-4") from None
    return period


class Employer(LedgerAggregate):
    """缴存单位: state, bank account, dated ratios and deferrals."""

    @staticmethod
    def create_id(credit_code: str) -> UUID:
        return derive_id("employer", credit_code)

    @event("Opened")
    def __init__(self, credit_code: str, name: str, bank_account: str, opened_on: date):
        self.credit_code = credit_code
        self.name = name
        self.bank_account = bank_account
        self.opened_on = opened_on
        self.state = "01"
        self.ratios: list[list[Any]] = []  # [from_period, employer %, employee %]
        self.deferrals: list[dict[str, Any]] = []

    @classmethod
    def open(cls, credit_code: str, name: str, bank_account: str, opened_on: date) -> "Employer":
        code = check_credit_code(credit_code)
        if not name.strip():
            raise EmployerStateError("a name is required", field="name")
        return cls(credit_code=code, name=name.strip(), bank_account=bank_account, opened_on=opened_on)

    def set_ratios(self, from_period: str, employer_ratio: Decimal, employee_ratio: Decimal,
                   ratio_min: Decimal, ratio_max: Decimal, ratios_equal: bool) -> None:
        check_period(from_period, "from_period")
        for field, ratio in (("employer_ratio", employer_ratio), ("employee_ratio", employee_ratio)):
            if not ratio_min <= ratio <= ratio_max:
                raise RatioOutOfRangeError(f"{ratio} % is outside {ratio_min}–{ratio_max} %", field=field)
        if ratios_equal and employer_ratio != employee_ratio:
            raise RatioOutOfRangeError("the two ratios must be equal under this policy", field="employee_ratio")
        self._ratios_set(from_period=from_period, employer_ratio=employer_ratio, employee_ratio=employee_ratio,
                         ratio_min=ratio_min, ratio_max=ratio_max)

    @event("RatiosSet")
    def _ratios_set(self, from_period: str, employer_ratio: Decimal, employee_ratio: Decimal,
                    ratio_min: Decimal, ratio_max: Decimal) -> None:
        self.ratios = [r for r in self.ratios if r[0] != from_period]
        self.ratios.append([from_period, employer_ratio, employee_ratio])
        self.ratios.sort(key=lambda r: r[0])

    def ratios_for(self, period: str) -> tuple[Decimal, Decimal] | None:
        chosen = None
        for from_period, employer_ratio, employee_ratio in self.ratios:
            if from_period <= period:
                chosen = (employer_ratio, employee_ratio)
        return chosen

    def defer(self, first_period: str, last_period: str, deadline: date, approved_on: date) -> None:
        check_period(first_period, "first_period")
        check_period(last_period, "last_period")
        if last_period < first_period:
            raise DeferralError("the last period is before the first", field="last_period")
        if self.state == "04":
            raise EmployerStateError("a closed employer cannot defer", field="employer")
        self._deferred(first_period=first_period, last_period=last_period, deadline=deadline, approved_on=approved_on)

    @event("Deferred")
    def _deferred(self, first_period: str, last_period: str, deadline: date, approved_on: date) -> None:
        self.deferrals.append({"first": first_period, "last": last_period, "deadline": deadline})

    def is_deferred(self, period: str, on: date) -> bool:
        """CON-3: a deferred period counts as paid until the back-payment deadline."""
        return any(d["first"] <= period <= d["last"] and on <= d["deadline"] for d in self.deferrals)

    @event("StateChanged")
    def change_state(self, state: str, value_date: date) -> None:
        if state not in EMPLOYER_STATES:
            raise EmployerStateError(f"unknown state {state}", field="state")
        self.state = state


class Member(LedgerAggregate):
    """缴存职工: identity per ACC-4, employer link, spouse link, card, loan marks."""

    @staticmethod
    def create_id(id_number: str) -> UUID:
        return derive_id("member", id_number)

    @event("Registered")
    def __init__(self, id_number: str, name: str, birth_date: date, sex: str, employer_id: UUID,
                 account_no: str, registered_on: date):
        self.id_number = id_number
        self.name = name
        self.birth_date = birth_date
        self.sex = sex
        self.employer_id = employer_id
        self.account_no = account_no
        self.registered_on = registered_on
        self.spouse_id: UUID | None = None
        self.card: dict[str, str] | None = None
        self.loan_marks: dict[str, str] = {}  # loan id (str) -> "pending" | "outstanding"
        self.loans_used: int = 0
        self.fraud_records: list[dict[str, Any]] = []

    @classmethod
    def register(cls, id_number: str, name: str, birth_date: date | None, sex: str | None,
                 employer_id: UUID, account_no: str, registered_on: date) -> "Member":
        number = check_resident_id(id_number.upper())
        derived_birth = ric.get_birth_date(number)
        derived_sex = sex_from_resident_id(number)
        if birth_date is not None and birth_date != derived_birth:
            raise InvalidIdentityError(f"birth date {birth_date} does not match the id ({derived_birth})",
                                       field="birth_date")
        if sex is not None and sex.upper() != derived_sex:
            raise InvalidIdentityError(f"sex {sex} does not match the id ({derived_sex})", field="sex")
        if not name.strip():
            raise InvalidIdentityError("a name is required", field="name")
        return cls(id_number=number, name=name.strip(), birth_date=derived_birth, sex=derived_sex,
                   employer_id=employer_id, account_no=account_no, registered_on=registered_on)

    @event("EmployerChanged")
    def change_employer(self, employer_id: UUID, value_date: date) -> None:
        self.employer_id = employer_id

    def link_spouse(self, spouse: "Member", value_date: date) -> None:
        """Write the link on both members; the caller saves both in one transaction."""
        if spouse.id == self.id:
            raise SpouseLinkError("a member cannot be their own spouse", field="spouse")
        for one in (self, spouse):
            if one.spouse_id is not None:
                raise SpouseLinkError(f"{one.name} already has a spouse link", field="spouse")
        self._spouse_linked(spouse_id=spouse.id, value_date=value_date)
        spouse._spouse_linked(spouse_id=self.id, value_date=value_date)

    @event("SpouseLinked")
    def _spouse_linked(self, spouse_id: UUID, value_date: date) -> None:
        self.spouse_id = spouse_id

    def unlink_spouse(self, spouse: "Member", value_date: date) -> None:
        if self.spouse_id != spouse.id or spouse.spouse_id != self.id:
            raise SpouseLinkError("these members are not linked as spouses", field="spouse")
        self._spouse_unlinked(spouse_id=spouse.id, value_date=value_date)
        spouse._spouse_unlinked(spouse_id=self.id, value_date=value_date)

    @event("SpouseUnlinked")
    def _spouse_unlinked(self, spouse_id: UUID, value_date: date) -> None:
        self.spouse_id = None

    def set_card(self, bank_code: str, card_number: str, branch_code: str = "", agreement_number: str = "") -> None:
        """LN-9: the repayment card (还款银行卡); checked with the Luhn algorithm."""
        digits = card_number.replace(" ", "")
        if not (digits.isascii() and digits.isdigit()) or not luhn.is_valid(digits):
            raise InvalidIdentityError("the card number fails its check digit (Luhn)", field="card_number", rule="LN-9")
        if branch_code and (len(branch_code) != 12 or not (branch_code.isascii() and branch_code.isdigit())):
            raise InvalidIdentityError("a 联行号 has 12 digits", field="branch_code", rule="LN-9")
        self._card_set(card={"bank": bank_code, "number": digits, "branch": branch_code,
                             "agreement": agreement_number})

    @event("CardSet")
    def _card_set(self, card: dict[str, str]) -> None:
        self.card = card

    @event("LoanMarked")
    def mark_loan(self, loan_id: str, mark: str) -> None:
        """LN-1/WD-4: 'pending' application, 'outstanding' loan, or 'none' when ended."""
        if mark == "none":
            self.loan_marks.pop(loan_id, None)
        else:
            if mark == "outstanding" and self.loan_marks.get(loan_id) != "outstanding":
                self.loans_used += 1
            self.loan_marks[loan_id] = mark

    @property
    def has_open_loan(self) -> bool:
        return bool(self.loan_marks)

    @property
    def has_outstanding_loan(self) -> bool:
        return "outstanding" in self.loan_marks.values()

    @event("FraudRecorded")
    def record_fraud(self, reference: str, value_date: date) -> None:
        self.fraud_records.append({"reference": reference, "value_date": value_date})
