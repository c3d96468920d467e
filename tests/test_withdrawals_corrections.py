"""Withdrawals (提取, WD-1..4), payouts, recoveries, reversals (冲正, COR-1..3) and idempotency, on both stores."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Callable

import pytest

from ledger.aggregates.base import LedgerRuleError, recording
from ledger.aggregates.errors import (
    AccountStateError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    PayoutStateError,
    ReversalError,
    ReversalWouldOverdrawError,
    ValueDateError,
    WithdrawalCapError,
    WithdrawalEvidenceError,
    WithdrawalKindError,
    WithdrawalNotAllowedError,
)
from ledger.aggregates.fund_account import CLOSED, KIND_NAMES_ZH, NORMAL, SEALED
from ledger.money import Money, MoneyError

pytestmark = pytest.mark.storage

PURCHASE = {"contract_number": "购2024-001", "price": "10000.00", "loan_amount": "8000.00",
            "contract_date": "2024-05-20"}
RENT = {"contract_number": "租2024-7", "monthly_rent": "2000.00", "months": "1"}
MONTH = Money("1866.48")  # 7,777.00 × 12 % × 2


def members(fund: Any, count: int = 1, months: int = 1) -> tuple[str, list[tuple[str, str]]]:
    """An employer at 12 % and ``count`` members (id, account) each credited ``months`` months to 2024-06."""
    employer = fund.employer(ratio="12", from_period="2024-01")
    people = [fund.member(employer, from_period="2024-01") for _ in range(count)]
    for month in range(months):
        fund.remit(employer, f"2024-{6 - months + 1 + month:02d}", [account for _, account in people])
    return employer, people


def mark_loan(ledger: Any, id_number: str, mark: str) -> None:
    """What the loan book does on disbursement ("outstanding") and payoff ("none")."""
    member = ledger.member(id_number)
    with recording(ledger.clock.now()):
        member.mark_loan(loan_id="loan-1", mark=mark)
    ledger.save(member)


# -- WD-1 kinds and evidence ------------------------------------------------------------------------
def test_an_unknown_kind_is_refused(fund: Any) -> None:
    _, [(_, account)] = members(fund)
    before = fund.fingerprint()
    with pytest.raises(WithdrawalKindError) as refused:
        fund.withdraw(account, "100.00", "lottery", {})
    assert (refused.value.field, refused.value.rule) == ("kind", "WD-1")
    assert fund.fingerprint() == before


@pytest.mark.parametrize(("kind", "evidence", "missing"), [
    ("purchase", {k: v for k, v in PURCHASE.items() if k != "price"}, "price"),
    ("purchase", {**PURCHASE, "contract_number": "  "}, "contract_number"),
    ("rent", {"contract_number": "租1", "monthly_rent": "1000.00"}, "months"),
    ("retirement", {}, "retirement_date"),
    ("death", {"certificate_number": "死亡证1", "heirs": "张三:1/1"}, "payee"),
    ("07", {}, "contract_number"),
])
def test_missing_evidence_is_refused_naming_the_field(fund: Any, kind: str, evidence: dict[str, str],
                                                      missing: str) -> None:
    _, [(_, account)] = members(fund)
    before = fund.fingerprint()
    with pytest.raises(WithdrawalEvidenceError) as refused:
        fund.withdraw(account, "100.00", kind, evidence)
    assert refused.value.field == missing and missing in str(refused.value)
    assert fund.fingerprint() == before


def test_bad_amounts_and_evidence_change_nothing(fund: Any) -> None:
    _, [(_, account)] = members(fund)
    before = fund.fingerprint()
    for amount in (100.0, "0", "0.00", "-1.00", "1.005", "abc", None):
        with pytest.raises(MoneyError) as refused:
            fund.withdraw(account, amount)
        assert refused.value.field == "amount"
    with pytest.raises(MoneyError) as refused:
        fund.withdraw(account, "100.00", "purchase", {**PURCHASE, "price": "十万"})
    assert refused.value.field == "price"
    for months in ("1.5", "0", "-2", "one"):
        with pytest.raises(WithdrawalEvidenceError) as bad:
            fund.withdraw(account, "100.00", "rent", {**RENT, "months": months})
        assert bad.value.field == "months"
    with pytest.raises(InsufficientBalanceError):
        fund.withdraw(account, "1866.49")
    with pytest.raises(ValueDateError):
        fund.withdraw(account, "1.00", value_date=fund.today + timedelta(days=1))
    assert fund.fingerprint() == before
    fund.assert_books()


# -- WD-2 caps --------------------------------------------------------------------------------------------
def test_purchase_is_capped_at_price_less_loans_per_household_within_12_months(fund: Any) -> None:
    employer, [(husband, his), (wife, hers)] = members(fund, 2)
    fund.ledger.link_spouses(husband, wife, fund.today)
    fund.withdraw(his, "1500.00", "purchase", PURCHASE)          # cap 10,000 − 8,000 = 2,000
    before = fund.fingerprint()
    with pytest.raises(WithdrawalCapError) as refused:
        fund.withdraw(hers, "500.01", "purchase", PURCHASE)     # the household has 500.00 left
    assert (refused.value.rule, refused.value.field) == ("WD-2", "amount")
    assert "500.00" in str(refused.value)
    assert fund.fingerprint() == before
    fund.withdraw(hers, "500.00", "purchase", PURCHASE)

    fund.on(date(2024, 8, 1))
    with pytest.raises(WithdrawalNotAllowedError) as refused:  # next purchase withdrawal after 365 days
        fund.withdraw(his, "100.00", "purchase", PURCHASE)
    assert refused.value.field == "value_date" and "2025-06-01" in str(refused.value)

    fund.on(date(2025, 6, 2))                                   # the 12-month window has passed
    fund.remit(employer, "2024-07", [hers])
    fund.withdraw(hers, "1500.00", "purchase", {**PURCHASE, "contract_date": "2025-05-30"})
    fund.assert_books()


@pytest.mark.parametrize("signed", ["2023-05-31", "2024-06-02", "2024-13-01"])
def test_purchase_comes_within_12_months_after_the_contract(fund: Any, signed: str) -> None:
    _, [(_, account)] = members(fund)                           # today 2024-06-01
    before = fund.fingerprint()
    with pytest.raises((WithdrawalNotAllowedError, WithdrawalEvidenceError)) as refused:
        fund.withdraw(account, "100.00", "purchase", {**PURCHASE, "contract_date": signed})
    assert refused.value.field == "contract_date"
    assert refused.value.rule == ("WD-1" if signed == "2024-13-01" else "WD-2")
    assert fund.fingerprint() == before
    fund.withdraw(account, "100.00", "purchase", {**PURCHASE, "contract_date": "2023-06-01"})  # 12 months: in


def test_rent_cap_is_cumulative_per_household_month_by_month(fund: Any) -> None:
    employer, [(husband, his), (wife, hers)] = members(fund, 2, months=3)
    fund.ledger.link_spouses(husband, wife, fund.today)
    fund.withdraw(his, "4500.00", "rent", {**RENT, "months": "3"})   # June..August at the 1,500 cap
    before = fund.fingerprint()
    with pytest.raises(WithdrawalCapError) as refused:           # the same months again, by the spouse
        fund.withdraw(hers, "0.01", "rent", {**RENT, "months": "3"})
    assert (refused.value.rule, refused.value.field) == ("WD-2", "amount")
    assert fund.fingerprint() == before
    fund.on(date(2024, 8, 1))                                    # August is used; September and October are not
    with pytest.raises(WithdrawalCapError):
        fund.withdraw(hers, "3000.01", "rent", {**RENT, "months": "3"})
    fund.withdraw(hers, "3000.00", "rent", {**RENT, "months": "3"})
    fund.assert_books()


def test_rent_is_capped_monthly_and_waits_for_the_next_allowed_date(fund: Any) -> None:
    _, [(_, account)] = members(fund, months=3)
    with pytest.raises(WithdrawalCapError):
        fund.withdraw(account, "1500.01", "rent", RENT)         # 2,000 rent, cap 1,500 a month
    fund.withdraw(account, "1500.00", "rent", RENT)
    fund.on(date(2024, 8, 29))
    with pytest.raises(WithdrawalNotAllowedError) as refused:
        fund.withdraw(account, "500.00", "rent", RENT)
    assert refused.value.rule == "WD-1" and "2024-08-30" in str(refused.value)
    fund.on(date(2024, 8, 30))
    fund.withdraw(account, "2000.00", "rent", {**RENT, "monthly_rent": "1000.00", "months": "2"})
    assert fund.balance(account) == Money("5599.44") - Money("3500.00")
    fund.assert_books()


def test_loan_repayment_is_capped_at_this_years_due_per_household(fund: Any) -> None:
    _, [(husband, his), (wife, hers)] = members(fund, 2)
    fund.ledger.link_spouses(husband, wife, fund.today)
    evidence = {"contract_number": "商贷001", "lender": "建设银行", "due_this_year": "1000.00"}
    fund.withdraw(his, "600.00", "loan-repayment", evidence)
    with pytest.raises(WithdrawalCapError):
        fund.withdraw(hers, "400.01", "loan-repayment", evidence)
    fund.withdraw(hers, "400.00", "loan-repayment", evidence)
    assert fund.balance(his) + fund.balance(hers) == MONTH + MONTH - Money("1000.00")


@pytest.mark.parametrize(("kind", "evidence", "code"), [
    ("retirement", {"retirement_date": "2024-06-01"}, "03"),
    ("incapacity", {"certificate_number": "残2024-1"}, "04"),
    ("leaving", {"reason": "离开本市"}, "05"),
    ("death", {"certificate_number": "死亡证1", "heirs": "张三:1/1", "payee": "张三"}, "08"),
])
def test_closing_kinds_pay_out_the_balance_and_close_the_account(fund: Any, kind: str, evidence: dict[str, str],
                                                                code: str) -> None:
    _, [(_, account)] = members(fund, months=2)
    paid = fund.withdraw(account, None, kind, evidence)
    assert (paid["reason_code"], paid["amount"], paid["balance"], paid["state"]) == (code, "3732.96", "0.00", CLOSED)
    closed = fund.account(account)
    assert (closed.close_reason, closed.closed_on, closed.export_state_code) == ("withdrawal", fund.today, "05")
    payout = fund.ledger.pending_payouts()[0]
    assert payout.amount == Money("3732.96")
    assert payout.payee == evidence.get("payee", fund.ledger.member_by_account(account).name)
    fund.assert_books()


def test_a_death_withdrawal_is_not_paid_to_the_member(fund: Any) -> None:
    _, [(id_number, account)] = members(fund)
    name = fund.ledger.member(id_number).name
    with pytest.raises(WithdrawalEvidenceError) as refused:
        fund.withdraw(account, None, "death", {"certificate_number": "死亡证1", "heirs": "张三", "payee": name})
    assert refused.value.field == "payee"


# -- WD-4 -------------------------------------------------------------------------------------------------
def test_a_borrower_or_spouse_closes_only_after_payoff(fund: Any) -> None:
    _, [(borrower, his), (spouse, hers)] = members(fund, 2)
    fund.ledger.link_spouses(borrower, spouse, fund.today)
    mark_loan(fund.ledger, borrower, "outstanding")
    before = fund.fingerprint()
    for account in (his, hers):
        with pytest.raises(WithdrawalNotAllowedError) as refused:
            fund.withdraw(account, None, "leaving", {"reason": "离开本市"})
        assert refused.value.rule == "WD-4"
    assert fund.fingerprint() == before
    fund.withdraw(hers, "100.00", "other")  # a partial withdrawal is not a closing one
    mark_loan(fund.ledger, borrower, "none")
    assert fund.withdraw(hers, None, "leaving", {"reason": "离开本市"})["state"] == CLOSED


# -- payouts and WD-3 recovery ----------------------------------------------------------------------------
def test_a_paid_payout_clears_and_a_failed_one_credits_the_member_back(fund: Any) -> None:
    _, [(_, account)] = members(fund, months=2)
    paid = fund.withdraw(account, "1000.00")
    failed = fund.withdraw(account, "500.00")
    assert fund.ledger.trial_balance().balance("2101") == Money("1500.00")
    fund.ledger.settle_payout(paid["serial"], True, fund.today, "ICBC/20240601/P1")
    fund.ledger.settle_payout(failed["serial"], False, fund.today, "ICBC/20240601/P2")
    assert fund.balance(account) == Money("3732.96") - Money("1000.00")
    trial = fund.ledger.trial_balance()
    assert (trial.balance("2101"), trial.balance("1001")) == (Money("0.00"), Money("2732.96"))
    kinds = [line["kind"] for line in fund.ledger.history(account)["lines"]]
    assert kinds == ["remittance", "remittance", "withdrawal", "withdrawal", "payout-failed"]

    before = fund.fingerprint()
    again = fund.ledger.settle_payout(paid["serial"], True, fund.today, "ICBC/20240601/P1")
    assert again["repeat"] is True
    with pytest.raises(PayoutStateError):
        fund.ledger.settle_payout(paid["serial"], False, fund.today, "ICBC/20240601/P9")
    assert fund.fingerprint() == before
    fund.assert_books()


def test_a_failed_closing_payout_reopens_the_account_sealed(fund: Any) -> None:
    _, [(_, account)] = members(fund)
    closing = fund.withdraw(account, None, "retirement", {"retirement_date": "2024-06-01"})
    fund.ledger.settle_payout(closing["serial"], False, fund.today, "ICBC/20240601/F1")
    reopened = fund.account(account)
    assert (reopened.state, reopened.balance) == (SEALED, MONTH)
    fund.assert_books()


def test_wd3_a_fraudulent_withdrawal_is_recovered_and_a_closed_account_reopens_sealed(fund: Any) -> None:
    _, [(id_number, account)] = members(fund)
    closing = fund.withdraw(account, None, "leaving", {"reason": "伪造材料"}, key="fraud")
    fund.ledger.settle_payout(closing["serial"], True, fund.today, "ICBC/20240601/P1")
    fund.on(date(2024, 6, 20))
    recovered = fund.ledger.recover(account, closing["posting_id"], fund.today, "追回2024-1")
    assert (recovered["state"], recovered["recovered"], recovered["balance"]) == (SEALED, "1866.48", "1866.48")
    assert fund.account(account).close_reason is None
    assert fund.ledger.member(id_number).fraud_records == [{"reference": "追回2024-1", "value_date": fund.today}]
    lines = fund.ledger.history(account)["lines"]
    assert [(line["kind"], line["amount"]) for line in lines] == [
        ("remittance", "1866.48"), ("withdrawal", "-1866.48"), ("recovery", "1866.48")]
    assert lines[-1]["detail"] == {"original": closing["posting_id"]}
    before = fund.fingerprint()
    assert fund.ledger.recover(account, closing["posting_id"], fund.today, "追回2024-1")["repeat"] is True
    assert fund.fingerprint() == before
    trial = fund.ledger.trial_balance()
    assert (trial.balance("1001"), trial.balance("2001")) == (MONTH, MONTH)
    fund.assert_books(date(2024, 6, 19))
    fund.ledger.unseal(account, fund.today)
    assert fund.account(account).state == NORMAL


# -- COR-1..3 reversals -------------------------------------------------------------------------------------
def test_cor1_a_reversal_mirrors_the_original_on_its_value_date(fund: Any) -> None:
    employer, [(_, account)] = members(fund, months=2)
    posting = fund.account(account).movements[1][3]
    fund.on(date(2024, 6, 10))
    reversed_ = fund.ledger.reverse(account, posting, fund.today, "重复入账")
    assert (reversed_["amount"], reversed_["balance"], reversed_["interest_adjustment"]) == (
        "-1866.48", "1866.48", "0.00")
    lines = fund.ledger.history(account)["lines"]
    assert [(line["value_date"], line["kind"], line["amount"], line["reversed"]) for line in lines] == [
        ("2024-06-01", "remittance", "1866.48", False),
        ("2024-06-01", "remittance", "1866.48", True),
        ("2024-06-01", "reversal", "-1866.48", False),
    ]
    assert lines[-1]["detail"] == {"original": posting, "reason": "重复入账"}
    assert KIND_NAMES_ZH[lines[-1]["kind"]] == "冲正"  # statements mark the reversal 冲正
    original_journal = fund.account(account).postings[posting]["journal"]
    mirrored = fund.account(account).postings[f"rev:{posting}"]["journal"]
    assert [(l["account"], l["side"], l["amount"]) for l in mirrored] == [
        (l["account"], {"Dr": "Cr", "Cr": "Dr"}[l["side"]], l["amount"]) for l in original_journal]
    assert fund.ledger.trial_balance(date(2024, 6, 1)).balance("2001") == MONTH
    fund.assert_books(date(2024, 5, 31), date(2024, 6, 1))


def test_cor1_a_reversal_is_never_reversed_nor_repeated(fund: Any) -> None:
    _, [(_, account)] = members(fund, months=2)
    posting = fund.account(account).movements[0][3]
    first = fund.ledger.reverse(account, posting, fund.today, "错账")
    before = fund.fingerprint()
    with pytest.raises(ReversalError) as refused:
        fund.ledger.reverse(account, f"rev:{posting}", fund.today, "冲正的冲正")
    assert "never reversed" in str(refused.value)
    assert fund.ledger.reverse(account, posting, fund.today, "错账") == {**first, "repeat": True}
    with pytest.raises(IdempotencyConflictError):
        fund.ledger.reverse(account, posting, fund.today, "另一个理由")
    assert fund.fingerprint() == before


def test_cor2_a_reversal_that_would_make_a_balance_negative_is_refused(fund: Any) -> None:
    employer, [(_, account)] = members(fund)
    first = fund.account(account).movements[0][3]
    fund.on(date(2024, 6, 5))
    fund.withdraw(account, "1800.00")
    fund.on(date(2024, 6, 10))
    fund.remit(employer, "2024-07", [account])
    assert fund.balance(account) == Money("1932.96")
    before = fund.fingerprint()
    with pytest.raises(ReversalWouldOverdrawError) as refused:  # as of 5 June the balance would be −1,800.00
        fund.ledger.reverse(account, first, fund.today, "错账")
    assert refused.value.rule == "COR-2"
    fund.withdraw(account, "1000.00")
    with pytest.raises(ReversalWouldOverdrawError):  # and today's balance would be negative too
        fund.ledger.reverse(account, fund.account(account).movements[2][3], fund.today, "错账")
    assert fund.fingerprint() != before
    fund.assert_books()


def test_cor1_reversing_a_withdrawal_withdraws_its_payout_instruction(fund: Any) -> None:
    _, [(_, account)] = members(fund)
    wrong = fund.withdraw(account, "1000.00")
    fund.ledger.reverse(account, wrong["posting_id"], fund.today, "金额错误")
    assert fund.balance(account) == MONTH
    assert fund.ledger.pending_payouts() == []
    assert fund.ledger.trial_balance().balance("2101") == Money("0.00")
    with pytest.raises(PayoutStateError):  # the bank cannot pay a withdrawn instruction any more
        fund.ledger.settle_payout(wrong["serial"], True, fund.today, "ICBC/20240601/P1")
    fund.assert_books(date(2024, 5, 31))

    paid = fund.withdraw(account, "500.00")
    fund.ledger.settle_payout(paid["serial"], True, fund.today, "ICBC/20240601/P2")
    before = fund.fingerprint()
    with pytest.raises(ReversalError) as refused:  # the money has left: recover it (WD-3)
        fund.ledger.reverse(account, paid["posting_id"], fund.today, "错账")
    assert "WD-3" in str(refused.value)
    assert fund.fingerprint() == before
    fund.assert_books()


def july_and_august_credited(fund: Any) -> tuple[str, str]:
    """A member credited on 2024-07-01 and 2024-08-01; returns the account and the August posting."""
    fund.on(date(2024, 7, 1))
    employer = fund.employer(ratio="12", from_period="2024-01")
    _, account = fund.member(employer, from_period="2024-01")
    fund.remit(employer, "2024-07", [account])
    fund.on(date(2024, 8, 1))
    fund.remit(employer, "2024-08", [account])
    return account, fund.account(account).movements[1][3]


def test_cor3_a_reversal_in_a_settled_interest_year_posts_an_interest_adjustment(fund: Any) -> None:
    account, wrong = july_and_august_credited(fund)
    fund.on(date(2025, 7, 1))
    settled = Money(fund.ledger.settle_interest(date(2025, 6, 30))["interest"])
    rate = Decimal("0.015") / 360
    assert settled == Money.of((MONTH.amount * 365 + MONTH.amount * 334) * rate)
    without = Money.of(MONTH.amount * 365 * rate)

    fund.on(date(2025, 7, 5))
    result = fund.ledger.reverse(account, wrong, fund.today, "非本人缴存")
    assert Money(result["interest_adjustment"]) == without - settled
    lines = fund.ledger.history(account)["lines"]
    assert [(line["kind"], line["value_date"]) for line in lines][-3:] == [
        ("reversal", "2024-08-01"), ("interest", "2025-06-30"), ("interest-adjustment", "2025-07-05")]
    assert fund.balance(account) == MONTH + without
    trial = fund.ledger.trial_balance()
    assert trial.balance("5001") == without
    assert fund.ledger.trial_balance(date(2025, 7, 4)).balance("5001") == settled
    fund.assert_books(date(2024, 7, 31), date(2024, 8, 1), date(2025, 6, 30), date(2025, 7, 4), date(2025, 7, 5))


def test_cor3_a_receipt_value_dated_into_a_settled_year_adjusts_that_years_interest(fund: Any) -> None:
    """MNY-4 with COR-3: the year to 2025-06-30 is settled on 07-01; money that arrived on 06-28 is recorded on
    07-03 (a late bank result): the member earns its three days (06-28..06-30) by an adjustment on 07-03."""
    fund.on(date(2024, 7, 1))
    employer = fund.employer(ratio="12", from_period="2024-01")
    _, account = fund.member(employer, from_period="2024-01")
    fund.remit(employer, "2024-07", [account])
    fund.on(date(2025, 7, 1))
    settled = Money(fund.ledger.settle_interest(date(2025, 6, 30))["interest"])
    document = fund.register(employer, "2025-06", [account])
    fund.on(date(2025, 7, 3))
    fund.pay(document["total"], document["serial"], value_date=date(2025, 6, 28))
    rate = Decimal("0.015") / 360
    expected = Money.of((MONTH.amount * 365 + MONTH.amount * 3) * rate) - settled
    assert expected == Money.of(MONTH.amount * 3 * rate) and not expected.is_zero
    lines = fund.ledger.history(account)["lines"]
    assert [(line["kind"], line["value_date"]) for line in lines][-3:] == [
        ("remittance", "2025-06-28"), ("interest", "2025-06-30"), ("interest-adjustment", "2025-07-03")]
    assert Money(lines[-1]["amount"]) == expected
    assert fund.balance(account) == MONTH + settled + MONTH + expected
    fund.on(date(2025, 7, 10))                                   # reversing it takes the adjustment back
    late = next(m[3] for m in fund.account(account).movements if m[0] == date(2025, 6, 28))
    result = fund.ledger.reverse(account, late, fund.today, "错账")
    assert Money(result["interest_adjustment"]) == -expected
    fund.assert_books(date(2025, 6, 30), date(2025, 7, 3), date(2025, 7, 10))


def test_cor3_a_reversal_adjusts_every_settled_year_the_money_was_carried_into(fund: Any) -> None:
    """A contribution of 2024-08-01 reversed on 2026-07-05, after two settlements: both years earned on it
    (2024-08-01..2025-06-30 and all of 2025-07-01..2026-06-30), so the adjustment takes back both."""
    account, wrong = july_and_august_credited(fund)
    fund.on(date(2025, 7, 1))
    first = Money(fund.ledger.settle_interest(date(2025, 6, 30))["interest"])
    fund.on(date(2026, 7, 1))
    second = Money(fund.ledger.settle_interest(date(2026, 6, 30))["interest"])
    rate = Decimal("0.015") / 360
    first_without = Money.of(MONTH.amount * 365 * rate)
    second_without = Money.of((MONTH + first).amount * 365 * rate)  # the first year's interest stays earned
    fund.on(date(2026, 7, 5))
    result = fund.ledger.reverse(account, wrong, fund.today, "非本人缴存")
    assert Money(result["interest_adjustment"]) == (first_without - first) + (second_without - second)
    assert fund.balance(account) == MONTH + first + second + Money(result["interest_adjustment"])
    fund.assert_books(date(2026, 7, 4), date(2026, 7, 5))


def test_reversing_on_a_closed_account_is_refused(fund: Any) -> None:
    _, [(_, account)] = members(fund)
    posting = fund.account(account).movements[0][3]
    fund.withdraw(account, None, "retirement", {"retirement_date": "2024-06-01"})
    with pytest.raises(AccountStateError):
        fund.ledger.reverse(account, posting, fund.today, "错账")


# -- idempotency ------------------------------------------------------------------------------------------
def test_the_same_key_with_the_same_content_returns_the_first_result_and_changes_nothing(fund: Any) -> None:
    _, [(_, account)] = members(fund)
    first = fund.withdraw(account, "100.00", key="client-42")
    before = fund.fingerprint()
    again = fund.withdraw(account, "100.00", key="client-42")
    assert again == {**first, "repeat": True}
    assert fund.fingerprint() == before
    assert fund.balance(account) == MONTH - Money("100.00")


@pytest.mark.parametrize("change", [
    {"amount": "100.01"}, {"kind": "rent", "evidence": RENT}, {"value_date": date(2024, 5, 31)},
    {"evidence": {"purpose": "另一个用途"}},
])
def test_the_same_key_with_other_content_is_refused(fund: Any, change: dict[str, Any]) -> None:
    _, [(_, account)] = members(fund)
    fund.withdraw(account, "100.00", key="client-43")
    before = fund.fingerprint()
    arguments = {"account_no": account, "amount": "100.00", "kind": "other", "evidence": {"purpose": "测试"},
                 "value_date": fund.today, **change}
    with pytest.raises(IdempotencyConflictError) as refused:
        fund.withdraw(key="client-43", **arguments)
    assert refused.value.field == "idempotency_key"
    assert fund.fingerprint() == before


def test_every_refusal_is_a_domain_error(fund: Any) -> None:
    _, [(_, account)] = members(fund)
    attempts: list[Callable[[], Any]] = [
        lambda: fund.withdraw(account, "99999.00"),
        lambda: fund.withdraw(account, "1.00", "nope"),
        lambda: fund.ledger.reverse(account, "rev:none", fund.today, "x"),
    ]
    for attempt in attempts:
        with pytest.raises((LedgerRuleError, LookupError)):
            attempt()


def test_cor3_two_reversals_in_one_settled_year_adjust_its_interest_once_each(fund: Any) -> None:
    fund.on(date(2024, 7, 1))
    employer = fund.employer(ratio="12", from_period="2024-01")
    _, account = fund.member(employer, from_period="2024-01")
    fund.remit(employer, "2024-07", [account])
    fund.on(date(2024, 8, 1))
    fund.remit(employer, "2024-08", [account])
    fund.on(date(2024, 9, 1))
    fund.remit(employer, "2024-09", [account])
    first, second = (fund.account(account).movements[i][3] for i in (0, 1))
    fund.on(date(2025, 7, 1))
    settled = Money(fund.ledger.settle_interest(date(2025, 6, 30))["interest"])
    rate = Decimal("0.015") / 360
    only_third = Money.of(MONTH.amount * 303 * rate)  # 2024-09-01 .. 2025-06-30

    fund.on(date(2025, 7, 5))
    one = Money(fund.ledger.reverse(account, first, fund.today, "错账")["interest_adjustment"])
    two = Money(fund.ledger.reverse(account, second, fund.today, "错账")["interest_adjustment"])
    assert settled + one + two == only_third   # the year now earns what the one true credit earned
    assert fund.balance(account) == MONTH + only_third
    assert fund.ledger.trial_balance().balance("5001") == only_third
    fund.assert_books(date(2025, 6, 30), date(2025, 7, 5))
