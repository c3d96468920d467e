"""The member documents of ST-1 built from the read models: statement, certificate, their checks.

- :func:`account_statement` — 个人账户明细: opening balance, lines in value-date then recorded
  order with the kind in Chinese, reversals marked 冲正 (COR-1) with the posting they mirror,
  offset lines with reason 06 and the loan number (OFF-5), running and closing balance.
- :func:`contribution_certificate` — 缴存证明 as of D with every ST-1 field; its
  verification code is ``AuditChain.certificate_code`` over the certificate's canonical JSON,
  tied to the audit chain head whose position is the certificate number's last part.
- :func:`check_certificate` — recomputes that code from a certificate's JSON and the chain.
- :func:`repayment_statement` — 还款明细 of a loan as of D: each instalment due at its rate, what paid it
  and from where (borrower fund / spouse fund / card, OFF-5), days overdue and penalty (LN-7); the header
  shows the rate in force on D (after a 1 January repricing the new one, LN-2) and the rate at disbursement.

Months paid follow CON-3: a deferred (缓缴) period counts as paid and continuous while its
back-payment deadline has not passed on D. The documents are the dataclasses of
:mod:`ledger.reports`; their renderers give JSON and PDF. Nothing here reads the event store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from ledger.application import CHINA_TZ
from ledger.audit import AuditChain, Head, canonical_json
from ledger.money import ZERO, Money
from ledger.policy import Policy
from ledger.projections.batch import money
from ledger.projections.loans import loan_row, repayment_rows
from ledger.projections.queries import AccountLine, ReadModel
from ledger.reports import (
    AccountStatement,
    AccountStatus,
    ContributionCertificate,
    DocumentError,
    EntryKind,
    RepaymentInstalment,
    RepaymentMethod,
    RepaymentStatement,
    StatementLine,
    contribution_certificate_to_json,
    mask_id_number,
)
from ledger.services.accounts import share

CODE_CHARS_MAX = 64
CONTINUITY_MONTHS = 6  # ST-1 / LN-1: the 6 periods before the month of D
DEFERRAL_MONTHS_MAX = 120
CERTIFICATE_PREFIX = "ZM"
CHAIN_POSITION_DIGITS_MAX = 18  # a chain position fits a signed 64-bit integer
CERTIFICATE_NUMBER = re.compile(r"^ZM\d{8}-[0-9A-Za-z]+-(\d{1,%d})$" % CHAIN_POSITION_DIGITS_MAX)
PENDING_CODE = "pending"

ENTRY_KINDS = {
    "remittance": EntryKind.REMITTANCE, "back-payment": EntryKind.BACK_PAYMENT, "interest": EntryKind.INTEREST,
    "transfer-in": EntryKind.TRANSFER_IN, "withdrawal": EntryKind.WITHDRAWAL, "offset": EntryKind.OFFSET,
    "standing-withdrawal": EntryKind.STANDING_WITHDRAWAL, "court-deduction": EntryKind.COURT_DEDUCTION,
    "transfer-out": EntryKind.TRANSFER_OUT, "interest-adjustment": EntryKind.INTEREST_ADJUSTMENT,
}
# Money that comes back for a withdrawal: its own kind once ledger.reports has one, else shown as
# the withdrawal mirrored (the same amount, the other side, naming the original posting).
CREDIT_BACK_KINDS = {"payout-failed": "PAYOUT_RETURNED", "recovery": "RECOVERY"}
STATUS_BY_CODE = {status.code: status for status in AccountStatus}


def short_code(text: str | None) -> str:
    """A posting id as a document code (≤ 64 characters; a longer one keeps a hash of itself)."""
    if not text:
        return ""
    if len(text) <= CODE_CHARS_MAX:
        return text
    return text[:CODE_CHARS_MAX - 9] + "~" + hashlib.sha256(text.encode()).hexdigest()[:8]


# -- account statement (个人账户明细) ------------------------------------------------------
def _entry_kind(line: AccountLine, index: int) -> tuple[EntryKind, bool]:
    """The document kind of a line and whether it shows as a reversal (冲正)."""
    if line.kind == "reversal":
        kind = ENTRY_KINDS.get(line.reverses_kind or "")
        if kind is None:
            raise DocumentError(f"lines[{index}].kind", f"a reversal of {line.reverses_kind!r} has no statement kind")
        return kind, True
    if line.kind in CREDIT_BACK_KINDS:
        own = getattr(EntryKind, CREDIT_BACK_KINDS[line.kind], None)
        return (own, False) if own is not None else (EntryKind.WITHDRAWAL, True)
    kind = ENTRY_KINDS.get(line.kind)
    if kind is None:
        raise DocumentError(f"lines[{index}].kind", f"posting kind {line.kind!r} has no statement kind")
    return kind, False


def statement_line(line: AccountLine, index: int) -> StatementLine:
    kind, shown_as_reversal = _entry_kind(line, index)
    debit = (-line.amount) if line.amount.is_negative else ZERO
    credit = ZERO if line.amount.is_negative else line.amount
    return StatementLine(
        value_date=line.value_date, recorded_at=line.recorded_at, kind=kind, debit=debit, credit=credit,
        balance=line.balance, reason_code=line.reason_code, reference=line.reference[:120],
        is_reversal=shown_as_reversal, serial=short_code(line.posting_id),
        reverses_serial=short_code(line.original_posting_id) if shown_as_reversal else "")


def account_statement(read: ReadModel, account_no: str, date_from: date, date_to: date, *, issued_on: date,
                      centre_name: str, known_at: datetime | None = None) -> AccountStatement:
    """个人账户明细 of one account over [date_from, date_to], as known at ``known_at`` (MNY-4)."""
    if date_from > date_to:
        raise DocumentError("date_from", "is after date_to")
    account = read.account(account_no)
    employer = read.employer(account["employer_id"])
    opening, lines = read.lines(account_no, date_from, date_to, known_at)
    shown = [statement_line(line, index) for index, line in enumerate(lines) if not line.amount.is_zero]
    return AccountStatement(
        centre_name=centre_name, member_name=account["member_name"],
        id_number_masked=mask_id_number(account["id_number"]), account_number=account_no,
        employer_name=employer["name"], period_from=date_from, period_to=date_to, opening_balance=opening,
        lines=tuple(shown), closing_balance=shown[-1].balance if shown else opening, issued_on=issued_on)


# -- periods (缴至年月, months paid, CON-3) ------------------------------------------------------
def period_index(period: str) -> int:
    return int(period[:4]) * 12 + int(period[5:7]) - 1


def period_at(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def deferred_periods(employer: dict[str, Any], on: date) -> set[str]:
    """CON-3: periods of a deferral whose back-payment deadline has not passed on ``on``."""
    periods: set[str] = set()
    for deferral in json.loads(employer["deferrals_json"]):
        if on > date.fromisoformat(deferral["deadline"]):
            continue
        first, last = period_index(deferral["first"]), period_index(deferral["last"])
        periods.update(period_at(i) for i in range(first, min(last, first + DEFERRAL_MONTHS_MAX) + 1))
    return periods


@dataclass(frozen=True)
class PaidMonths:
    paid_up_to: str
    total: int
    in_a_row: int
    six_before_continuous: bool


def paid_months(paid: set[str], deferred: set[str], as_of: date, opened_on: date) -> PaidMonths:
    """缴至年月, months counted in total and in a row (ending at the latest), the 6 before D's month."""
    now = period_index(as_of.strftime("%Y-%m"))
    counted = {period_index(p) for p in paid} | {period_index(p) for p in deferred if period_index(p) <= now}
    before = range(now - CONTINUITY_MONTHS, now)
    if paid:
        paid_up_to = max(paid)
    else:  # nothing paid yet: up to the month before the account opened
        paid_up_to = period_at(period_index(opened_on.strftime("%Y-%m")) - 1)
    in_a_row = 0
    if counted:
        cursor = max(counted)
        while cursor in counted:
            in_a_row, cursor = in_a_row + 1, cursor - 1
    return PaidMonths(paid_up_to, len(counted), in_a_row, all(i in counted for i in before))


def _dated(rows: list[list[Any]], period: str) -> list[Any] | None:
    """The dated record (``[from_period, ...]``) in force for ``period``."""
    chosen = None
    for row in sorted(rows):
        if row[0] <= period:
            chosen = row
    return chosen


# -- contribution certificate (缴存证明) -------------------------------------------------------
def certificate_payload(document: dict[str, Any]) -> bytes:
    """The bytes the verification code covers: the certificate's JSON without its code, canonical."""
    body = {key: value for key, value in document.items() if key != "verification_code"}
    return canonical_json(body)


def certificate_number(issued_on: date, account_no: str, head: Head) -> str:
    return f"{CERTIFICATE_PREFIX}{issued_on:%Y%m%d}-{account_no}-{head.position}"


def _terms(read: ReadModel, account: dict[str, Any], employer: dict[str, Any], policy: Policy,
           as_of: date) -> tuple[Money, Decimal, Decimal, Money]:
    """Base, the two ratios and the monthly amount (CON-1) in force for the month of D."""
    period = as_of.strftime("%Y-%m")
    base_row = _dated(json.loads(account["bases_json"]), period)
    ratio_row = _dated(json.loads(employer["ratios_json"]), period)
    base = Money(base_row[1]) if base_row else ZERO
    employer_ratio, member_ratio = (Decimal(ratio_row[1]), Decimal(ratio_row[2])) if ratio_row else (Decimal(0),) * 2
    rounding = policy.at(as_of).contribution.share_rounding
    monthly = share(base, employer_ratio, rounding) + share(base, member_ratio, rounding)
    return base, employer_ratio, member_ratio, monthly


def contribution_certificate(read: ReadModel, audit: AuditChain, policy: Policy, id_number: str, as_of: date, *,
                             issued_on: date, head: Head | None = None,
                             mask_id: bool = False) -> ContributionCertificate:
    """缴存证明 as of D, its code tied to the audit chain head (AUD-1)."""
    member = read.member(id_number)
    account = read.account(member["account_no"])
    employer = read.employer(account["employer_id"])
    account_no = account["account_no"]
    if as_of < account["opened_on"]:
        raise DocumentError("as_of", f"is before the account opened ({account['opened_on']})")
    _state, code = read.state_as_of(account_no, as_of)
    paid = {p for p, total in read.contributions_by_period(account_no, as_of).items() if total > ZERO}
    months = paid_months(paid, deferred_periods(employer, as_of), as_of, account["opened_on"])
    base, employer_ratio, member_ratio, monthly = _terms(read, account, employer, policy, as_of)
    end_of_day = datetime.combine(as_of, time.max, tzinfo=CHINA_TZ)
    marks, loans_used = read.loan_marks_known_by(member, end_of_day)
    head = head or audit.head()
    draft = ContributionCertificate(
        centre_name=policy.centre_name, member_name=member["name"],
        id_number=mask_id_number(member["id_number"]) if mask_id else member["id_number"],
        account_number=account_no, employer_name=employer["name"], opened_on=account["opened_on"],
        account_state=STATUS_BY_CODE[code], contribution_base=base, employer_ratio=employer_ratio,
        member_ratio=member_ratio, monthly_amount=monthly, paid_up_to=months.paid_up_to,
        months_paid_total=months.total, months_paid_consecutive=months.in_a_row,
        six_months_before_continuous=months.six_before_continuous, balance=read.balance(account_no, as_of),
        has_outstanding_fund_loan="outstanding" in marks.values(), fund_loans_used=loans_used,
        has_fraud_record=bool(read.fraud_records_by(member, as_of)), as_of=as_of, issued_on=issued_on,
        certificate_number=certificate_number(issued_on, account_no, head), verification_code=PENDING_CODE)
    payload = certificate_payload(contribution_certificate_to_json(draft))
    return dataclasses.replace(draft, verification_code=audit.certificate_code(payload, head))


@dataclass(frozen=True)
class CertificateCheck:
    ok: bool
    position: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "chain_position": self.position, "reason": self.reason}


def check_certificate(audit: AuditChain, document: dict[str, Any]) -> CertificateCheck:
    """Does the certificate's verification code match its content and the chain row it names?"""
    if document.get("document") != "contribution_certificate":
        return CertificateCheck(False, None, "document: not a contribution certificate JSON")
    code, number = document.get("verification_code"), document.get("certificate_number")
    if not isinstance(code, str) or not isinstance(number, str):
        return CertificateCheck(False, None, "verification_code: missing")
    matched = CERTIFICATE_NUMBER.match(number)
    if matched is None:
        return CertificateCheck(False, None, "certificate_number: not a number this centre issues")
    position = int(matched.group(1))
    if audit.check_certificate_code(certificate_payload(document), code, position):
        return CertificateCheck(True, position, "the code matches the content and the audit chain")
    return CertificateCheck(False, position, "verification_code: does not match the content at this chain "
                                             "position (AUD-1): altered, or not issued here")


# -- repayment statement (还款明细) ------------------------------------------------------------
METHODS = {"equal-instalment": RepaymentMethod.EQUAL_INSTALMENT, "equal-principal": RepaymentMethod.EQUAL_PRINCIPAL}


def repayment_instalment(row: dict[str, Any]) -> RepaymentInstalment:
    """One row of :func:`ledger.projections.loans.repayment_rows`; the penalty shown is what was charged
    and paid with it (crystallised on payment, LN-7)."""
    return RepaymentInstalment(
        number=row["number"], due_on=row["due_on"], due_principal=money(row["principal_fen"]),
        due_interest=money(row["interest_fen"]), paid_on=row["paid_on"],
        paid_principal=money(row["paid_principal_fen"]), paid_interest=money(row["paid_interest_fen"]),
        paid_penalty=money(row["paid_penalty_fen"]), from_borrower_fund=money(row["from_borrower_fund_fen"]),
        from_spouse_fund=money(row["from_spouse_fund_fen"]), from_card=money(row["from_card_fen"]),
        days_overdue=row["days_overdue"], penalty=money(row["paid_penalty_fen"]),
        annual_rate=Decimal(row["annual_rate"]))


def rate_in_force(instalments: tuple[RepaymentInstalment, ...], as_of: date, disbursement_rate: Decimal) -> Decimal:
    """ST-1 / LN-2: the loan's rate as of D, as the loan book reads it — the rate of the first instalment due
    after D (the one accruing), else the last instalment's; the rate at disbursement if there is none."""
    upcoming = next((i for i in instalments if i.due_on > as_of), instalments[-1] if instalments else None)
    return upcoming.annual_rate if upcoming is not None and upcoming.annual_rate is not None else disbursement_rate


def repayment_statement(read: ReadModel, loan_no: str, as_of: date, *, issued_on: date,
                        centre_name: str) -> RepaymentStatement:
    """还款明细 of one loan as of D: every instalment of the schedule in force, paid parts value-dated ≤ D."""
    loan = loan_row(read.engine, loan_no)
    if loan["disbursed_on"] is None or loan["annual_rate"] is None:
        raise DocumentError("loan", f"loan {loan_no} is {loan['state']}, not disbursed", "LN-4")
    method = METHODS.get(loan["method"])
    if method is None:
        raise DocumentError("method", f"unknown repayment method {loan['method']!r}", "LN-3")
    instalments = tuple(repayment_instalment(r) for r in repayment_rows(read.engine, loan_no, as_of))
    disbursement_rate = Decimal(loan["annual_rate"])
    return RepaymentStatement(
        centre_name=centre_name, loan_number=loan_no, borrower_name=loan["borrower_name"],
        principal=money(loan["principal_fen"]), annual_rate=rate_in_force(instalments, as_of, disbursement_rate),
        term_months=loan["months"], method=method, instalments=instalments, issued_on=issued_on,
        disbursement_annual_rate=disbursement_rate)
