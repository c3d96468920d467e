"""Employers (EMP-1), members (ACC-4) and fund accounts (ACC-1..5), value dates (MNY-4), on both stores."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

import pytest

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.errors import (
    AccountFrozenError,
    AccountStateError,
    BaseOutOfRangeError,
    FreezeAuthorityError,
    InsufficientBalanceError,
    InvalidCreditCodeError,
    InvalidIdentityError,
    RatioOutOfRangeError,
    SpouseLinkError,
    ValueDateError,
)
from ledger.aggregates.fund_account import CLOSED, NORMAL, SEALED
from ledger.money import Money, MoneyError
from ledger.sampledata import credit_code, resident_id

pytestmark = pytest.mark.storage

COURT_ORDER = "(2024)川0104执123号"


def funded(fund: Any, base: str = "7777.00", months: int = 1) -> tuple[str, str, str]:
    """An employer at 12 % and a member credited ``months`` months from 2024-06: (employer, id, account)."""
    employer = fund.employer(ratio="12", from_period="2024-01")
    id_number, account = fund.member(employer, base=base, from_period="2024-01")
    for month in range(months):
        fund.remit(employer, f"2024-{6 - months + 1 + month:02d}", [account])
    return employer, id_number, account


# -- EMP-1 employers ---------------------------------------------------------------------------
def test_an_employer_needs_a_valid_credit_code(fund: Any) -> None:
    good = credit_code(7)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    before = fund.fingerprint()
    with pytest.raises(InvalidCreditCodeError) as refused:
        fund.ledger.open_employer(bad, "甲公司", "6222000011112222", fund.today)
    assert refused.value.field == "credit_code" and refused.value.rule == "EMP-1"
    assert fund.fingerprint() == before
    opened = fund.ledger.open_employer(good, "甲公司", "6222000011112222", fund.today, ratio="12")
    assert opened == {"employer": good, "name": "甲公司", "existing": False}
    assert fund.ledger.employer(good).state == "01"


def test_an_employer_is_registered_once(fund: Any) -> None:
    code = fund.employer()
    name = fund.ledger.employer(code).name
    again = fund.ledger.open_employer(code, name, "6222000011112222", fund.today)
    assert again["existing"] is True
    with pytest.raises(InvalidIdentityError):
        fund.ledger.open_employer(code, "别的名字", "6222000011112222", fund.today)


@pytest.mark.parametrize(("employer_ratio", "employee_ratio", "field"), [
    ("4", "4", "employer_ratio"), ("13", "13", "employer_ratio"), ("12", "10", "employee_ratio"),
])
def test_ratios_are_5_to_12_percent_and_equal(fund: Any, employer_ratio: str, employee_ratio: str,
                                              field: str) -> None:
    code = fund.employer(ratio="12")
    before = fund.fingerprint()
    with pytest.raises(RatioOutOfRangeError) as refused:
        fund.ledger.set_ratios(code, "2024-07", employer_ratio, employee_ratio, fund.today)
    assert refused.value.field == field
    assert fund.fingerprint() == before


def test_ratios_are_dated(fund: Any) -> None:
    code = fund.employer(ratio="12", from_period="2024-01")
    fund.ledger.set_ratios(code, "2024-07", "10", "10", fund.today)
    employer = fund.ledger.employer(code)
    assert employer.ratios_for("2023-12") is None
    assert employer.ratios_for("2024-06") == (12, 12)
    assert employer.ratios_for("2024-07") == (10, 10)


def test_a_member_moving_employer_keeps_the_account(fund: Any) -> None:
    first, second = fund.employer(), fund.employer()
    id_number, account = fund.member(first)
    fund.ledger.change_employer(id_number, second, fund.today)
    member = fund.ledger.member(id_number)
    assert member.employer_id == fund.ledger.employer(second).id
    assert member.account_no == account


# -- ACC-4 members ---------------------------------------------------------------------------------
def test_a_member_needs_a_valid_resident_id(fund: Any) -> None:
    employer = fund.employer()
    good = resident_id(date(1985, 3, 9), 3, male=False)
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")
    before = fund.fingerprint()
    for wrong in (bad, good[:-2], "11010519850309ABCD"):
        with pytest.raises(InvalidIdentityError) as refused:
            fund.ledger.open_member(wrong, "李四", employer, fund.today)
        assert refused.value.field == "id_number" and refused.value.rule == "ACC-4"
    assert fund.fingerprint() == before


def test_birth_date_and_sex_come_from_the_id_and_must_match(fund: Any) -> None:
    employer = fund.employer()
    woman = resident_id(date(1985, 3, 9), 3, male=False)
    with pytest.raises(InvalidIdentityError) as refused:
        fund.ledger.open_member(woman, "李四", employer, fund.today, birth_date=date(1985, 3, 10))
    assert refused.value.field == "birth_date"
    with pytest.raises(InvalidIdentityError) as refused:
        fund.ledger.open_member(woman, "李四", employer, fund.today, sex="M")
    assert refused.value.field == "sex"
    opened = fund.ledger.open_member(woman, "李四", employer, fund.today, birth_date=date(1985, 3, 9), sex="f")
    assert (opened["birth_date"], opened["sex"]) == ("1985-03-09", "F")
    man = resident_id(date(1970, 12, 31), 4, male=True)
    assert fund.ledger.open_member(man, "王五", employer, fund.today)["sex"] == "M"


def test_one_fund_account_per_member(fund: Any) -> None:
    employer = fund.employer()
    id_number, account = fund.member(employer)
    again = fund.ledger.open_account(id_number, fund.today, base="7777.00")
    assert again == {"account_no": account, "state": NORMAL, "existing": True}
    assert fund.ledger.account_ids() == [fund.account(account).id]


def test_a_base_outside_floor_and_cap_is_refused(fund: Any) -> None:
    employer = fund.employer()
    number = resident_id(date(1990, 5, 5), 90, male=True)
    fund.ledger.open_member(number, "赵六", employer, fund.today)
    for base in ("2329.99", "32969.01"):
        with pytest.raises(BaseOutOfRangeError) as refused:
            fund.ledger.open_account(number, fund.today, base=base)
        assert refused.value.field == "base"
    with pytest.raises(MoneyError):
        fund.ledger.open_account(number, fund.today, base=5000.0)  # type: ignore[arg-type]
    assert fund.ledger.account_ids() == []
    for base in ("2330.00", "32969.00"):
        fund.ledger.open_account(number, fund.today, base=base)


def test_the_spouse_link_is_written_on_both_sides_and_only_once(fund: Any) -> None:
    employer = fund.employer()
    husband, _ = fund.member(employer)
    wife, _ = fund.member(employer, male=False)
    other, _ = fund.member(employer, male=False)
    fund.ledger.link_spouses(husband, wife, fund.today)
    assert fund.ledger.member(husband).spouse_id == fund.ledger.member(wife).id
    assert fund.ledger.member(wife).spouse_id == fund.ledger.member(husband).id

    before = fund.fingerprint(), fund.ledger.member(other).version
    for a, b in ((husband, other), (other, wife), (other, other)):
        with pytest.raises(SpouseLinkError) as refused:
            fund.ledger.link_spouses(a, b, fund.today)
        assert refused.value.rule == "ACC-4"
    assert (fund.fingerprint(), fund.ledger.member(other).version) == before
    assert fund.ledger.member(other).spouse_id is None

    fund.ledger.unlink_spouses(wife, husband, fund.today)
    assert fund.ledger.member(husband).spouse_id is None and fund.ledger.member(wife).spouse_id is None
    fund.ledger.link_spouses(husband, other, fund.today)
    assert fund.ledger.member(other).spouse_id == fund.ledger.member(husband).id


# -- ACC-1 / ACC-2 states -------------------------------------------------------------------------
def test_seal_unseal_and_the_states_in_between(fund: Any) -> None:
    employer = fund.employer()
    _, account = fund.member(employer)
    sealed = fund.ledger.seal(account, fund.today)
    assert (sealed["state"], sealed["export_code"]) == (SEALED, "02")
    with pytest.raises(AccountStateError) as refused:
        fund.ledger.seal(account, fund.today)
    assert refused.value.rule == "ACC-1"
    other = fund.employer()
    unsealed = fund.ledger.unseal(account, fund.today, other)
    assert (unsealed["state"], unsealed["export_code"]) == (NORMAL, "01")
    assert fund.account(account).employer_id == fund.ledger.employer(other).id
    with pytest.raises(AccountStateError):
        fund.ledger.unseal(account, fund.today)


def test_contributions_only_in_normal_and_back_payment_before_sealing_while_sealed(fund: Any) -> None:
    employer, _, account = funded(fund, months=0)
    fund.on(date(2024, 6, 20))
    fund.ledger.seal(account, fund.today)

    refused = fund.register(employer, "2024-06", [account])  # a remittance for the sealed month
    assert refused["accepted"] == 0
    assert refused["problem_rows"][0]["rule"] == "ACC-2"
    refused = fund.register(employer, "2024-05", [account])  # a remittance, not a back-payment
    assert refused["problem_rows"][0]["rule"] == "ACC-2"
    refused = fund.register(employer, "2024-06", [account], kind="back-payment")  # not before sealing
    assert refused["problem_rows"][0]["rule"] == "ACC-2"

    fund.remit(employer, "2024-05", [account], kind="back-payment")
    assert fund.balance(account) == Money("1866.48")
    assert fund.account(account).state == SEALED
    fund.assert_books()


def test_money_for_an_account_sealed_after_registration_waits_in_suspense(fund: Any) -> None:
    employer, _, account = funded(fund, months=0)
    document = fund.register(employer, "2024-06", [account])
    fund.ledger.seal(account, fund.today)
    receipt = fund.pay(document["total"], document["serial"])
    assert (receipt["applied"], receipt["suspense"]) == ("0.00", "1866.48")
    assert fund.balance(account) == Money("0.00")
    assert fund.ledger.trial_balance().balance("2102") == Money("1866.48")
    fund.assert_books()


def test_close_needs_a_zero_balance_and_a_closed_account_accepts_nothing(fund: Any) -> None:
    employer, id_number, account = funded(fund)
    with pytest.raises(AccountStateError) as refused:
        fund.ledger.close_account(account, "transfer-out", fund.today)
    assert refused.value.field == "balance"
    with pytest.raises(AccountStateError) as refused:
        fund.ledger.close_account(account, "emigrated", fund.today)
    fund.withdraw(account, "1866.48")
    with pytest.raises(AccountStateError) as refused:
        fund.ledger.close_account(account, "emigrated", fund.today)
    assert refused.value.field == "reason"
    closed = fund.ledger.close_account(account, "transfer-out", fund.today)
    assert (closed["state"], closed["export_code"]) == (CLOSED, "04")

    before = fund.fingerprint()
    commands: list[Callable[[], Any]] = [
        lambda: fund.ledger.seal(account, fund.today),
        lambda: fund.ledger.unseal(account, fund.today),
        lambda: fund.ledger.freeze(account, "court", COURT_ORDER, fund.today),
        lambda: fund.ledger.close_account(account, "merge", fund.today),
        lambda: fund.ledger.set_base(account, "2024-07", "7777.00", fund.today),
        lambda: fund.withdraw(account, "1.00"),
        lambda: fund.withdraw(account, None, "retirement", {"retirement_date": "2024-06-01"}),
        lambda: fund.ledger.court_deduct(account, "1.00", fund.today, COURT_ORDER),
    ]
    for command in commands:
        with pytest.raises(AccountStateError):
            command()
    for kind in ("remittance", "back-payment"):
        assert fund.register(employer, "2024-07", [account], kind=kind)["problem_rows"][0]["rule"] == "ACC-2"
    assert fund.fingerprint() == before
    fund.assert_books()


def test_merge_close_exports_03(fund: Any) -> None:
    _, account = fund.member(fund.employer())
    assert fund.ledger.close_account(account, "merge", fund.today)["export_code"] == "03"


# -- ACC-3 balance never below zero -------------------------------------------------------------------
def test_a_debit_above_the_available_balance_is_refused_whole(fund: Any) -> None:
    _, _, account = funded(fund)
    before = fund.fingerprint()
    with pytest.raises(InsufficientBalanceError) as refused:
        fund.withdraw(account, "1866.49")
    assert refused.value.rule == "ACC-3" and refused.value.field == "amount"
    assert fund.fingerprint() == before
    fund.withdraw(account, "1866.48")
    assert fund.balance(account) == Money("0.00")
    fund.assert_books()


def test_retained_balance_min_applies_to_partial_debits_only(open_ledger: Any, fund_for: Callable[..., Any],
                                                             make_policy: Callable[..., Any]) -> None:
    fund = fund_for(open_ledger(make_policy(account={"retained_balance_min": "0.01"})))
    _, _, account = funded(fund)
    assert fund.ledger.balance(account)["available"] == "1866.47"
    with pytest.raises(InsufficientBalanceError):
        fund.withdraw(account, "1866.48")
    fund.withdraw(account, "1866.00")
    with pytest.raises(InsufficientBalanceError):
        fund.withdraw(account, "0.48")
    fund.withdraw(account, "0.47")
    assert fund.balance(account) == Money("0.01")
    paid = fund.withdraw(account, None, "retirement", {"retirement_date": "2024-06-01"})
    assert (paid["amount"], paid["state"]) == ("0.01", CLOSED)  # a closing withdrawal goes below it
    fund.assert_books()


def test_a_court_deduction_goes_below_the_retained_minimum(open_ledger: Any, fund_for: Callable[..., Any],
                                                           make_policy: Callable[..., Any]) -> None:
    fund = fund_for(open_ledger(make_policy(account={"retained_balance_min": "0.01"})))
    _, _, account = funded(fund)
    fund.ledger.court_deduct(account, "1866.48", fund.today, COURT_ORDER)
    assert fund.balance(account) == Money("0.00")
    fund.assert_books()


def test_a_backdated_debit_cannot_take_money_that_arrived_after_its_value_date(fund: Any) -> None:
    employer, _, account = funded(fund)                     # 1,866.48 on 2024-06-01
    fund.on(date(2024, 6, 20))
    fund.remit(employer, "2024-07", [account])               # 1,866.48 more on 2024-06-20
    fund.on(date(2024, 6, 25))
    before = fund.fingerprint()
    with pytest.raises(InsufficientBalanceError):
        fund.withdraw(account, "2000.00", value_date=date(2024, 6, 10))
    assert fund.fingerprint() == before
    fund.withdraw(account, "1866.48", value_date=date(2024, 6, 10))
    fund.withdraw(account, "1866.48", value_date=date(2024, 6, 20))
    for day in (date(2024, 6, 1), date(2024, 6, 10), date(2024, 6, 19), date(2024, 6, 20)):
        assert fund.account(account).balance_as_of(day) >= Money("0.00")
    fund.assert_books(date(2024, 6, 10), date(2024, 6, 19))


# -- ACC-5 freezes ---------------------------------------------------------------------------------
def test_a_court_freeze_holds_the_whole_balance_and_only_the_court_lifts_it(fund: Any) -> None:
    _, _, account = funded(fund)
    frozen = fund.ledger.freeze(account, "court", COURT_ORDER, fund.today)
    assert (frozen["state"], frozen["export_code"], frozen["frozen"]) == (NORMAL, "06", True)
    assert fund.ledger.balance(account)["available"] == "0.00"
    with pytest.raises(FreezeAuthorityError):
        fund.ledger.freeze(account, "court", COURT_ORDER, fund.today)
    with pytest.raises(FreezeAuthorityError):
        fund.ledger.freeze(account, "police", "X1", fund.today)

    before = fund.fingerprint()
    with pytest.raises(AccountFrozenError):
        fund.withdraw(account, "1.00")
    with pytest.raises(FreezeAuthorityError):
        fund.ledger.unfreeze(account, "centre", COURT_ORDER, "中心解冻1号", fund.today)
    assert fund.fingerprint() == before

    fund.ledger.seal(account, fund.today)  # the state is kept in its own field
    assert fund.ledger.balance(account)["export_code"] == "06" and fund.account(account).state == SEALED
    lifted = fund.ledger.unfreeze(account, "court", COURT_ORDER, "(2024)川0104执123号之一", fund.today)
    assert (lifted["frozen"], lifted["export_code"]) == (False, "02")
    fund.withdraw(account, "1.00")


def test_available_excludes_a_frozen_sum(fund: Any) -> None:
    _, _, account = funded(fund)
    fund.ledger.freeze(account, "centre", "中心冻结2号", fund.today, amount="1000.00")
    assert fund.ledger.balance(account)["available"] == "866.48"
    assert fund.ledger.balance(account)["frozen"] == "1000.00"
    with pytest.raises(AccountFrozenError):
        fund.withdraw(account, "866.49")
    with pytest.raises(AccountFrozenError):
        fund.withdraw(account, None, "retirement", {"retirement_date": "2024-06-01"})
    fund.withdraw(account, "866.48")
    assert fund.ledger.balance(account)["available"] == "0.00"
    assert fund.balance(account) == Money("1000.00")
    fund.assert_books()


def test_a_court_deduction_may_debit_a_frozen_account(fund: Any) -> None:
    _, _, account = funded(fund)
    fund.ledger.freeze(account, "court", COURT_ORDER, fund.today, amount="1500.00")
    deducted = fund.ledger.court_deduct(account, "1500.00", fund.today, COURT_ORDER)
    assert deducted["balance"] == "366.48"
    assert fund.account(account).freezes[f"court:{COURT_ORDER}"]["amount"] == Money("0.00")
    with pytest.raises(InsufficientBalanceError):
        fund.ledger.court_deduct(account, "366.49", fund.today, "(2024)川0104执124号")
    assert fund.ledger.trial_balance().balance("2101") == Money("1500.00")  # paid to the court via the bank
    again = fund.ledger.court_deduct(account, "1500.00", fund.today, COURT_ORDER)
    assert again["repeat"] is True and fund.balance(account) == Money("366.48")
    fund.assert_books()


def test_a_court_deduction_may_debit_an_account_the_centre_froze(fund: Any) -> None:
    """ACC-5: a court's deduction is not a withdrawal; the centre's freeze stays, only the centre lifts it."""
    _, _, account = funded(fund)
    fund.ledger.freeze(account, "centre", "中心冻结3号", fund.today)  # the whole balance
    with pytest.raises(AccountFrozenError):
        fund.withdraw(account, "1.00")
    deducted = fund.ledger.court_deduct(account, "500.00", fund.today, COURT_ORDER)
    assert deducted["balance"] == "1366.48"
    balance = fund.ledger.balance(account)
    assert (balance["available"], balance["frozen"], balance["export_code"]) == ("0.00", "1366.48", "06")
    assert list(fund.account(account).freezes) == ["centre:中心冻结3号"]
    with pytest.raises(AccountFrozenError):
        fund.withdraw(account, "1.00")
    fund.assert_books()


def test_a_freeze_has_a_positive_sum(fund: Any) -> None:
    _, _, account = funded(fund)
    for amount in ("0", "-1.00", "1.001"):
        with pytest.raises(MoneyError):
            fund.ledger.freeze(account, "court", COURT_ORDER, fund.today, amount=amount)
    assert not fund.account(account).is_frozen


# -- MNY-4 value dates ----------------------------------------------------------------------------------
def test_a_value_date_after_its_recording_is_refused(fund: Any) -> None:
    _, _, account = funded(fund)
    before = fund.fingerprint()
    tomorrow = fund.today + timedelta(days=1)
    for command in (lambda: fund.ledger.seal(account, tomorrow),
                    lambda: fund.withdraw(account, "1.00", value_date=tomorrow),
                    lambda: fund.ledger.freeze(account, "court", COURT_ORDER, tomorrow),
                    lambda: fund.pay("1.00", value_date=tomorrow)):
        with pytest.raises(ValueDateError) as refused:
            command()
        assert refused.value.rule == "MNY-4" and "after the recording date" in str(refused.value)
    assert fund.fingerprint() == before


def test_a_value_date_at_most_k_days_before_its_recording(fund: Any) -> None:
    _, _, account = funded(fund)
    fund.on(fund.today + timedelta(days=40))
    limit = fund.ledger.policy.at(fund.today).time.value_date_backdate_days_max
    assert limit == 31
    before = fund.fingerprint()
    with pytest.raises(ValueDateError) as refused:
        fund.withdraw(account, "1.00", value_date=fund.today - timedelta(days=limit + 1))
    assert "more than 31 days" in str(refused.value)
    with pytest.raises(ValueDateError):
        fund.ledger.seal(account, fund.today - timedelta(days=limit + 1))
    assert fund.fingerprint() == before
    fund.withdraw(account, "1.00", value_date=fund.today - timedelta(days=limit))
    fund.ledger.seal(account, fund.today - timedelta(days=limit))
    fund.assert_books()


def test_refused_commands_are_domain_errors_naming_a_rule(fund: Any) -> None:
    _, _, account = funded(fund)
    with pytest.raises(LedgerRuleError) as refused:
        fund.withdraw(account, "99999.00")
    assert refused.value.rule in str(refused.value)
    assert refused.value.field in str(refused.value)


# -- MNY-2 --------------------------------------------------------------------------------------------
def test_aggregates_never_read_the_clock(fund: Any) -> None:
    """An event created outside the entry point's recording() has no recorded time and fails loudly."""
    from uuid import uuid4

    from ledger.aggregates.base import NoRecordingTimeError
    from ledger.aggregates.fund_account import FundAccount

    with pytest.raises(NoRecordingTimeError):
        FundAccount(account_no="9000000000000001", member_id=uuid4(), employer_id=uuid4(), opened_on=fund.today)
    employer, _, account = funded(fund)
    recorded = [n for n in fund.ledger.iter_events() if getattr(n, "originator_id", None) ==
                fund.account(account).id]
    assert {event.timestamp for event in recorded} == {fund.clock.now()}
