"""ST-1 documents built from the read models: 个人账户明细 and 缴存证明 with a chain-tied code (AUD-1).

The statement must show the opening balance, the lines in value-date order with the kind
in Chinese, the reversal marked 冲正 with the posting it mirrors, the offset line with
reason 06 and the loan number (OFF-5), and the running and closing balance; its PDF must
carry the title and the amounts. The certificate must hold every ST-1 field, count a
deferred period as paid only while its deadline lasts (CON-3), and carry a verification
code that checks against the audit chain — and stops checking once anything is altered.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterator

import pymupdf
import pytest

from ledger.aggregates.base import recording
from ledger.application import CHINA_TZ
from ledger.money import Money
from ledger.projections import Projector, ReadModel
from ledger.reports import (
    EntryKind,
    account_statement_to_json,
    contribution_certificate_to_json,
    render_account_statement_pdf,
    render_contribution_certificate_pdf,
)
from ledger.sampledata import card_number
from ledger.statements import (
    account_statement,
    check_certificate,
    contribution_certificate,
    paid_months,
)

pytestmark = pytest.mark.storage

MONTHLY = Money("1866.48")  # base 7,777.00 × 12 % = 933.24 per share (CON-1)
LOAN_NO = "DK2024000123"
ST1_FIELDS = (
    "member_name", "id_number", "account_number", "employer_name", "opened_on", "account_state",
    "contribution_base", "employer_ratio", "member_ratio", "monthly_amount", "paid_up_to", "months_paid_total",
    "months_paid_consecutive", "six_months_before_continuous", "balance", "has_outstanding_fund_loan",
    "fund_loans_used", "has_fraud_record", "as_of", "issued_on", "certificate_number", "verification_code",
)


def pdf_text(pdf: bytes) -> str:
    with pymupdf.open(stream=pdf, filetype="pdf") as document:
        return "\n".join(page.get_text() for page in document)


def offset_debit(fund: Any, account_no: str, amount: str, day: date) -> None:
    """An offset deduction's fund part (OFF-5), as the monthly run would record it."""
    account = fund.account(account_no)
    with recording(fund.clock.now()):
        account.debit_for_loan(Money(amount), day, f"off:{LOAN_NO}:{day}", LOAN_NO, Money("0.00"))
    fund.ledger.save(account)


def mark_loan(fund: Any, id_number: str, mark: str) -> None:
    member = fund.ledger.member(id_number)
    with recording(fund.clock.now()):
        member.mark_loan(loan_id=LOAN_NO, mark=mark)
    fund.ledger.save(member)


@pytest.fixture
def centre(fund: Any) -> dict[str, Any]:
    """Member A pays June–November 2024 but September, deferred for the employer (CON-3);
    member B has a reversal, an offset, a recovered fraudulent withdrawal and a loan."""
    fund.on(date(2024, 6, 3))
    employer = fund.employer()
    (id_a, a), (id_b, b) = fund.member(employer), fund.member(employer)
    fund.ledger.defer(employer, "2024-09", "2024-09", date(2024, 6, 3))
    for month in (6, 7, 8, 10, 11):
        fund.on(date(2024, month, 8))
        fund.remit(employer, f"2024-{month:02d}", [a, b])
    fund.on(date(2024, 10, 20))
    october_b = next(m[3] for m in fund.account(b).movements if m[0] == date(2024, 10, 8))
    fund.ledger.reverse(b, october_b, date(2024, 10, 20), "重复入账")
    fund.on(date(2024, 11, 15))
    offset_debit(fund, b, "500.00", date(2024, 11, 15))
    mark_loan(fund, id_b, "outstanding")
    fraud = fund.withdraw(b, "300.00", value_date=date(2024, 11, 15))
    fund.ledger.settle_payout(fraud["serial"], True, date(2024, 11, 15), "ICBC/20241115/P9")
    fund.on(date(2024, 11, 20))
    fund.ledger.recover(b, fraud["posting_id"], date(2024, 11, 20), "骗提2024-1")
    return {"employer": employer, "a": a, "b": b, "id_a": id_a, "id_b": id_b, "reversed": october_b}


@pytest.fixture
def read(fund: Any, centre: dict[str, Any]) -> Iterator[ReadModel]:
    projector = Projector.for_ledger(fund.ledger)
    projector.catch_up()
    yield ReadModel(projector.engine)
    projector.close()


# -- 个人账户明细 -------------------------------------------------------------------------------
def test_statement_lines_balances_and_marks(fund, centre, read):
    statement = account_statement(read, centre["b"], date(2024, 7, 1), date(2024, 11, 30),
                                  issued_on=date(2024, 12, 1), centre_name=fund.ledger.policy.centre_name)
    assert statement.opening_balance == MONTHLY  # June's remittance, before the period
    kinds = [(line.kind, line.is_reversal) for line in statement.lines]
    assert kinds == [(EntryKind.REMITTANCE, False), (EntryKind.REMITTANCE, False), (EntryKind.REMITTANCE, False),
                     (EntryKind.REMITTANCE, True), (EntryKind.REMITTANCE, False), (EntryKind.OFFSET, False),
                     (EntryKind.WITHDRAWAL, False), kinds[7]]
    reversal = statement.lines[3]
    assert (reversal.debit, reversal.reverses_serial) == (MONTHLY, centre["reversed"])
    offset = statement.lines[5]
    assert (offset.reason_code, offset.reference, offset.debit) == ("06", LOAN_NO, Money("500.00"))
    assert statement.lines[6].reason_code == "99"  # the withdrawal's national reason code
    assert statement.closing_balance == fund.balance(centre["b"]) == Money("6965.92")
    document = account_statement_to_json(statement)
    assert [line["mark_zh"] for line in document["lines"]].count("冲正") >= 1
    assert document["lines"][5]["kind_zh"] == "冲还贷"


def test_statement_as_known_at_leaves_out_later_recordings(fund, centre, read):
    known = datetime(2024, 10, 19, 23, 0, tzinfo=CHINA_TZ)
    statement = account_statement(read, centre["b"], date(2024, 6, 1), date(2024, 12, 31),
                                  issued_on=date(2024, 12, 31), centre_name="中心", known_at=known)
    assert [line.is_reversal for line in statement.lines] == [False] * 4
    assert statement.closing_balance == Money("7465.92")


def test_statement_pdf_carries_the_title_and_the_amounts(fund, centre, read):
    statement = account_statement(read, centre["a"], date(2024, 6, 1), date(2024, 11, 30),
                                  issued_on=date(2024, 12, 1), centre_name=fund.ledger.policy.centre_name)
    text = pdf_text(render_account_statement_pdf(statement))
    assert "个人账户明细" in text
    assert "1,866.48" in text and "9,332.40" in text  # a month's remittance and the closing balance
    assert statement.closing_balance == Money("9332.40")


# -- 缴存证明 ----------------------------------------------------------------------------------
def test_certificate_has_every_st1_field_and_counts_the_deferral(fund, centre, read):
    certificate = contribution_certificate(read, fund.ledger.audit, fund.ledger.policy, centre["id_a"],
                                           date(2024, 12, 15), issued_on=date(2024, 12, 16))
    document = contribution_certificate_to_json(certificate)
    assert all(document.get(name) not in (None, "") for name in ST1_FIELDS), document
    assert (document["paid_up_to"], document["months_paid_total"], document["months_paid_consecutive"]) == (
        "2024-11", 6, 6)  # June–November, September deferred (CON-3)
    assert document["six_months_before_continuous"] is True
    assert (document["contribution_base"], document["employer_ratio"], document["monthly_amount"]) == (
        "7777.00", "12", "1866.48")
    assert (document["account_state"], document["balance"]) == ("01", "9332.40")
    assert (document["has_outstanding_fund_loan"], document["fund_loans_used"], document["has_fraud_record"]) == (
        False, 0, False)
    assert check_certificate(fund.ledger.audit, document).ok
    pdf = pdf_text(render_contribution_certificate_pdf(certificate))
    assert "缴存证明" in pdf and certificate.verification_code in pdf


def test_a_deferral_past_its_deadline_is_a_gap():
    paid = {"2024-06", "2024-07", "2024-08", "2024-10", "2024-11"}
    within = paid_months(paid, {"2024-09"}, date(2024, 12, 15), date(2024, 6, 3))
    after = paid_months(paid, set(), date(2024, 12, 15), date(2024, 6, 3))
    assert (within.total, within.in_a_row, within.six_before_continuous) == (6, 6, True)
    assert (after.total, after.in_a_row, after.six_before_continuous) == (5, 2, False)
    nothing = paid_months(set(), set(), date(2024, 6, 20), date(2024, 6, 3))
    assert (nothing.paid_up_to, nothing.total) == ("2024-05", 0)


def test_certificate_shows_loan_and_fraud_record(fund, centre, read):
    certificate = contribution_certificate(read, fund.ledger.audit, fund.ledger.policy, centre["id_b"],
                                           date(2024, 11, 30), issued_on=date(2024, 12, 1), mask_id=True)
    assert (certificate.has_outstanding_fund_loan, certificate.fund_loans_used) == (True, 1)
    assert certificate.has_fraud_record is True
    assert "*" in certificate.id_number
    assert certificate.months_paid_total == 5  # October reversed; September deferred still counts
    before = contribution_certificate(read, fund.ledger.audit, fund.ledger.policy, centre["id_b"],
                                      date(2024, 11, 10), issued_on=date(2024, 12, 1))
    assert (before.has_outstanding_fund_loan, before.has_fraud_record) == (False, False)


def test_the_code_fails_after_tampering_or_for_another_payload(fund, centre, read):
    audit = fund.ledger.audit
    mine = contribution_certificate_to_json(contribution_certificate(
        read, audit, fund.ledger.policy, centre["id_a"], date(2024, 12, 15), issued_on=date(2024, 12, 16)))
    theirs = contribution_certificate_to_json(contribution_certificate(
        read, audit, fund.ledger.policy, centre["id_b"], date(2024, 12, 15), issued_on=date(2024, 12, 16)))
    assert check_certificate(audit, mine).ok and check_certificate(audit, theirs).ok
    assert not check_certificate(audit, {**mine, "balance": "99332.40"}).ok
    assert not check_certificate(audit, {**theirs, "verification_code": mine["verification_code"]}).ok
    number = mine["certificate_number"]
    moved = number.rsplit("-", 1)[0] + "-" + str(int(number.rsplit("-", 1)[1]) - 1)
    assert not check_certificate(audit, {**mine, "certificate_number": moved}).ok
    assert not check_certificate(audit, {**mine, "document": "account_statement"}).ok
    fund.on(date(2024, 12, 20))
    fund.ledger.seal(centre["a"], date(2024, 12, 20))  # the chain moves on; the old code still checks
    assert check_certificate(audit, mine).ok


def test_a_certificate_is_the_same_document_when_issued_twice(fund, centre, read):
    first = contribution_certificate(read, fund.ledger.audit, fund.ledger.policy, centre["id_a"],
                                     date(2024, 12, 15), issued_on=date(2024, 12, 16))
    again = contribution_certificate(read, fund.ledger.audit, fund.ledger.policy, centre["id_a"],
                                     date(2024, 12, 15), issued_on=date(2024, 12, 16))
    assert dataclasses.asdict(first) == dataclasses.asdict(again)


# -- 还款明细: the worked loan, instalment 1 taken by the monthly offset (OFF-2, OFF-5) ----------------
FIRST_DEDUCTION = date(2025, 2, 17)  # instalment 1 is due Saturday 2025-02-15 (LN-4)


@pytest.fixture
def offset_loan(fund: Any) -> dict[str, Any]:
    """The worked loan; borrower fund 1,200.00, spouse fund 500.00, the card the rest (367.79)."""
    fund.on(date(2024, 6, 1))
    with fund.ledger.audit_bulk_load():
        employer = fund.employer(ratio="12", from_period="2024-06")
        borrower, borrower_account = fund.member(employer, base="30000.00", from_period="2024-06")
        spouse, spouse_account = fund.member(employer, base="30000.00", from_period="2024-06",
                                             birth_date=date(1991, 3, 3), male=False)
        fund.ledger.link_spouses(borrower, spouse, fund.today)
        fund.ledger.set_card(borrower, "ICBC", card_number(1))
        for month in range(6, 13):
            fund.on(date(2024, month, 5))
            fund.remit(employer, f"2024-{month:02d}", [borrower_account, spouse_account])
    fund.on(date(2025, 1, 10))
    loan_no = fund.ledger.apply_for_loan(borrower, "500000.00", 360, "equal-instalment", "800000.00", "20000.00",
                                         date(2025, 1, 10), "ICBC")["loan_no"]
    fund.ledger.approve_loan(loan_no, date(2025, 1, 10))
    fund.on(date(2025, 1, 15))
    fund.ledger.disburse_loan(loan_no, date(2025, 1, 15))
    fund.on(date(2025, 1, 20))
    for account_no, keep in ((borrower_account, "1200.00"), (spouse_account, "500.00")):
        take = fund.balance(account_no) - Money(keep)
        fund.withdraw(account_no, str(take), value_date=date(2025, 1, 20), key=f"keep-{account_no}")
    fund.ledger.create_mandate(loan_no, date(2025, 1, 20))
    fund.ledger.sign_mandate(loan_no, borrower, date(2025, 1, 20))
    fund.ledger.sign_mandate(loan_no, spouse, date(2025, 1, 20))
    fund.on(FIRST_DEDUCTION)
    fund.ledger.run_offset(FIRST_DEDUCTION)
    mandate = fund.ledger.mandate(loan_no)
    debit = fund.ledger.repository.get(mandate.last_debit_id)
    fund.ledger.submit_debits([debit], FIRST_DEDUCTION, "B0001")
    fund.on(date(2025, 2, 18))
    fund.ledger.collect_debit(debit.serial, FIRST_DEDUCTION, "H0000001", Money("367.79"))
    return {"loan_no": loan_no, "borrower_account": borrower_account}


def test_repayment_statement_splits_instalment_one_by_payer(fund, offset_loan):
    from ledger.reports import render_repayment_statement_pdf
    from ledger.statements import repayment_statement

    projector = Projector.for_ledger(fund.ledger)
    try:
        projector.catch_up()
        read = ReadModel(projector.engine)
        statement = repayment_statement(read, offset_loan["loan_no"], date(2025, 2, 28), issued_on=date(2025, 3, 1),
                                        centre_name=fund.ledger.policy.centre_name)
        first, second = statement.instalments[:2]
        assert (first.due_on, first.due_interest, first.due_principal) == (
            date(2025, 2, 15), Money("1187.50"), Money("880.29"))
        assert (first.paid_interest, first.paid_principal, first.paid_on, first.days_overdue) == (
            Money("1187.50"), Money("880.29"), FIRST_DEDUCTION, 0)  # the moved deduction day is on time
        assert (first.from_borrower_fund, first.from_spouse_fund, first.from_card) == (
            Money("1200.00"), Money("500.00"), Money("367.79"))
        assert (second.paid_total, second.days_overdue) == (Money("0.00"), 0)
        assert (len(statement.instalments), statement.annual_rate, statement.term_months) == (360, Decimal("2.85"),
                                                                                              360)
        later = repayment_statement(read, offset_loan["loan_no"], date(2025, 3, 31), issued_on=date(2025, 4, 1),
                                    centre_name="中心")
        assert later.instalments[1].days_overdue == 16  # due 03-15, unpaid on 03-31 (LN-7)
        text = pdf_text(render_repayment_statement_pdf(statement))
        assert "还款明细" in text and "367.79" in text and "1,200.00" in text
        account = account_statement(read, offset_loan["borrower_account"], date(2025, 2, 1), date(2025, 2, 28),
                                    issued_on=date(2025, 3, 1), centre_name="中心")
        offset = account.lines[-1]
        assert (offset.kind, offset.reason_code, offset.reference, offset.debit) == (
            EntryKind.OFFSET, "06", offset_loan["loan_no"], Money("1200.00"))
        digest = projector.digest()
        projector.rebuild()
        assert projector.digest() == digest
    finally:
        projector.close()


def test_repayment_statement_after_a_1_january_repricing_shows_each_rate_and_the_current_one(fund, offset_loan):
    """ST-1 / LN-2: the worked loan moves to 2.60 % on 2026-01-01 from instalment 13 (2,003.54 × 348); the
    statement shows 2.85 % on instalments 1-12, 2.60 % from 13, the current rate 2.60 % in its header, and
    the rate at disbursement beside it — not the rate at disbursement as if it were the rate now."""
    from ledger.reports import render_repayment_statement_pdf, repayment_statement_to_json
    from ledger.statements import repayment_statement

    fund.on(date(2026, 1, 1))
    fund.ledger.reprice_loans(date(2026, 1, 1))
    projector = Projector.for_ledger(fund.ledger)
    try:
        projector.catch_up()
        read = ReadModel(projector.engine)
        statement = repayment_statement(read, offset_loan["loan_no"], date(2026, 2, 28), issued_on=date(2026, 3, 1),
                                        centre_name=fund.ledger.policy.centre_name)
        twelfth, thirteenth = statement.instalments[11:13]
        assert (twelfth.annual_rate, thirteenth.annual_rate) == (Decimal("2.85"), Decimal("2.60"))
        assert thirteenth.due_principal + thirteenth.due_interest == Money("2003.54")
        assert (statement.annual_rate, statement.disbursement_annual_rate) == (Decimal("2.60"), Decimal("2.85"))
        before = repayment_statement(read, offset_loan["loan_no"], date(2025, 12, 31), issued_on=date(2026, 3, 1),
                                     centre_name="中心")
        assert before.annual_rate == Decimal("2.85")  # instalment 12, due 2026-01-15, still runs at 2.85 %
        document = repayment_statement_to_json(statement)
        assert document["annual_rate"] == "2.60" and document["instalments"][12]["annual_rate"] == "2.60"
        text = pdf_text(render_repayment_statement_pdf(statement))
        assert "当前年利率\n2.6%" in text and "发放时年利率\n2.85%" in text
    finally:
        projector.close()
