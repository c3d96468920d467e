"""Interest settlement (结息): INT-1 and INT-2 worked numbers, pure and through the Ledger.

INT-1's account: 20,000.00 carried forward on 2024-07-01, 1,000.00 credited on the 10th
of every month, 5,000.00 withdrawn on 2025-01-15 → product (积数) 8,721,000.00 → 363.38
(carried_plus_flows 359.21; daily rate rounded to 0.00004167: 363.40). INT-2: the same
account closed on 2025-01-01 → product 4,269,000.00, interest 177.88, payout 26,177.88.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Callable

import pytest

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.fund_account import CLOSED
from ledger.interest import (
    carried_plus_flows_interest,
    compute_interest,
    daily_product_interest,
    interest_year,
)
from ledger.money import Money

YEAR_START, YEAR_END = date(2024, 7, 1), date(2025, 6, 30)
RATES = [(date(2016, 2, 21), Decimal("1.50"))]
CARRIED = Decimal("20000.00")
MONTHLY = Decimal("1000.00")
WITHDRAWN_ON, WITHDRAWN = date(2025, 1, 15), Decimal("5000.00")


def tenths(first: date, last: date) -> list[date]:
    """The 10th of every month from ``first``'s month while on or before ``last``."""
    days, year, month = [], first.year, first.month
    while date(year, month, 10) <= last:
        days.append(date(year, month, 10))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return days


def int1_movements(through: date = YEAR_END) -> list[tuple[date, Decimal, str]]:
    movements = [(date(2024, 6, 30), CARRIED, "remittance")]
    movements += [(day, MONTHLY, "remittance") for day in tenths(YEAR_START, through)]
    if WITHDRAWN_ON <= through:
        movements.append((WITHDRAWN_ON, -WITHDRAWN, "withdrawal"))
    return movements


# -- pure: ledger.interest ---------------------------------------------------------------
def test_int1_daily_product() -> None:
    result = daily_product_interest(int1_movements(), YEAR_START, YEAR_END, RATES)
    assert result.product == Decimal("8721000.00")
    assert result.interest == Money("363.38")


def test_int1_carried_plus_flows() -> None:
    result = carried_plus_flows_interest(int1_movements(), YEAR_START, YEAR_END, RATES)
    assert result.interest == Money("359.21")
    assert result.product == Decimal("8721000.00")


def test_int1_rounded_daily_rate() -> None:
    result = compute_interest("daily_product", int1_movements(), YEAR_START, YEAR_END, RATES, "rounded")
    assert result.interest == Money("363.40")


def test_int2_closing_on_2025_01_01_settles_to_the_day_before() -> None:
    result = daily_product_interest(int1_movements(date(2024, 12, 31)), YEAR_START, date(2024, 12, 31), RATES)
    assert result.product == Decimal("4269000.00")
    assert result.interest == Money("177.88")
    assert Money(CARRIED + 6 * MONTHLY) + result.interest == Money("26177.88")


def test_a_rate_change_inside_the_year_splits_the_product_at_its_date() -> None:
    rates = [*RATES, (date(2025, 1, 1), Decimal("1.00"))]
    result = daily_product_interest(int1_movements(), YEAR_START, YEAR_END, rates)
    first_half, second_half = Decimal("4269000"), Decimal("8721000") - Decimal("4269000")
    exact = first_half * Decimal("0.015") / 360 + second_half * Decimal("0.010") / 360
    assert result.product == Decimal("8721000")
    assert result.interest == Money.of(exact) == Money("301.54")


def test_an_interest_credit_enters_the_product_from_1_july() -> None:
    settled = [(date(2024, 6, 30), Decimal("1000.00"), "interest")]
    this_year = daily_product_interest(settled, date(2023, 7, 1), date(2024, 6, 30), RATES)
    next_year = daily_product_interest(settled, YEAR_START, YEAR_END, RATES)
    assert this_year.product == 0
    assert next_year.product == Decimal("1000.00") * 365


def test_a_flow_counts_from_its_value_date_inclusive() -> None:
    one_day = daily_product_interest([(YEAR_END, Decimal("360000.00"), "remittance")], YEAR_START, YEAR_END, RATES)
    assert one_day.product == Decimal("360000.00")
    assert one_day.interest == Money("15.00")


@pytest.mark.parametrize(("day", "year"), [
    (date(2024, 7, 1), (date(2024, 7, 1), date(2025, 6, 30))),
    (date(2025, 6, 30), (date(2024, 7, 1), date(2025, 6, 30))),
    (date(2025, 1, 1), (date(2024, 7, 1), date(2025, 6, 30))),
    (date(2024, 6, 30), (date(2023, 7, 1), date(2024, 6, 30))),
])
def test_the_interest_year_runs_1_july_to_30_june(day: date, year: tuple[date, date]) -> None:
    assert interest_year(day) == year


def test_no_rate_in_force_is_an_error() -> None:
    with pytest.raises(ValueError, match="no interest rate"):
        daily_product_interest([], date(2015, 7, 1), date(2016, 6, 30), RATES)


# -- through the Ledger ---------------------------------------------------------------------
PREVIOUS_YEAR_INTEREST = Money("0.83")  # 19,999.17 for one day at 1.50 %


def build_int1_account(fund: Any, through: date) -> tuple[str, str]:
    """INT-1's history through the ledger's commands, up to and including ``through``.

    The carried-forward 20,000.00 is the balance after the 2023/24 settlement: 19,999.17 arrives
    on 2024-06-30 (nine months of 2,000.00 at base 10,000.00 × 10 % × 2, and a back-payment of
    1,999.17 for 2024-06) and earns 0.83 for that one day. Then base 5,000.00 × 10 % × 2 =
    1,000.00 arrives on the 10th of each month, and 5,000.00 is withdrawn on 2025-01-15.
    """
    fund.on(date(2024, 6, 30))
    employer = fund.employer(ratio="10", from_period="2023-09")
    _, account = fund.member(employer, base="10000.00", from_period="2023-09")
    for index in range(9):
        year, month = (2023, 9 + index) if index < 4 else (2024, index - 3)
        fund.remit(employer, f"{year}-{month:02d}", [account])
    line = fund.lines(employer, "2024-06", [account])[0]
    partial = [replace(line, employer_amount=Money("999.59"), employee_amount=Money("999.58"))]
    document = fund.ledger.register_remittance(employer, "2024-06", "back-payment", "B-2024-06", partial, fund.today)
    fund.pay(document["total"], document["serial"])
    assert fund.balance(account) == Money("19999.17")
    fund.on(YEAR_START)
    assert fund.ledger.settle_interest(date(2024, 6, 30))["interest"] == str(PREVIOUS_YEAR_INTEREST)
    assert fund.balance(account) == Money("20000.00")  # carried forward on 2024-07-01
    fund.ledger.set_base(account, "2024-07", "5000.00", fund.today)
    for day in tenths(YEAR_START, through):
        if day > WITHDRAWN_ON and WITHDRAWN_ON <= through and not fund.account(account).withdrawals:
            fund.on(WITHDRAWN_ON)
            fund.withdraw(account, str(WITHDRAWN), key="int1-withdrawal")
        fund.on(day)
        fund.remit(employer, f"{day:%Y-%m}", [account])
    return employer, account


@pytest.mark.storage
@pytest.mark.parametrize(("variant", "interest"), [
    ({}, "363.38"),
    ({"method": "carried_plus_flows"}, "359.21"),
    ({"daily_rate": "rounded"}, "363.40"),
])
def test_int1_through_the_ledger(open_ledger: Any, fund_for: Callable[..., Any], make_policy: Callable[..., Any],
                                 variant: dict[str, str], interest: str) -> None:
    fund = fund_for(open_ledger(make_policy(interest=variant) if variant else None))
    _, account = build_int1_account(fund, YEAR_END)
    assert fund.balance(account) == Money("27000.00")

    fund.on(date(2025, 6, 30))
    with pytest.raises(LedgerRuleError, match="not over"):
        fund.ledger.settle_interest(YEAR_END)
    fund.on(date(2025, 7, 1), hour=2)
    with pytest.raises(LedgerRuleError, match="interest year ends on"):
        fund.ledger.settle_interest(date(2025, 6, 29))
    result = fund.ledger.settle_interest(YEAR_END)
    assert result["settled"] == 1 and result["interest"] == interest

    settled = fund.account(account)
    assert settled.interest_years["2024"]["interest"] == Money(interest)
    assert settled.balance == Money("27000.00") + Money(interest)
    assert settled.balance_as_of(date(2025, 6, 29)) == Money("27000.00")
    assert settled.balance_as_of(YEAR_END) == Money("27000.00") + Money(interest)  # value-dated 30 June
    line = fund.ledger.history(account)["lines"][-1]
    assert (line["kind"], line["value_date"], line["amount"]) == ("interest", "2025-06-30", interest)
    trial = fund.ledger.trial_balance()
    assert trial.balance("5001") == PREVIOUS_YEAR_INTEREST + Money(interest)
    assert trial.balance("2001") == settled.balance
    fund.assert_books(date(2025, 1, 14), date(2025, 1, 15), date(2025, 6, 29), YEAR_END)

    again = fund.ledger.settle_interest(YEAR_END)  # a second run settles nothing twice
    assert (again["settled"], again["skipped"], again["interest"]) == (0, 1, "0.00")
    assert fund.balance(account) == settled.balance


@pytest.mark.storage
def test_int1_a_late_run_computes_to_30_june_not_to_the_run_date(fund: Any) -> None:
    employer, account = build_int1_account(fund, YEAR_END)
    fund.on(date(2025, 7, 10))
    fund.remit(employer, "2025-07", [account])  # after 30 June: not in this year's product
    fund.on(date(2025, 7, 25))
    assert fund.ledger.settle_interest(YEAR_END)["interest"] == "363.38"
    assert fund.balance(account) == Money("28363.38")
    fund.assert_books(YEAR_END, date(2025, 7, 10))


@pytest.mark.storage
def test_int2_closing_withdrawal_pays_balance_and_interest_to_the_day_before(fund: Any) -> None:
    _, account = build_int1_account(fund, date(2024, 12, 31))
    assert fund.balance(account) == Money("26000.00")
    policy = fund.ledger.policy.at(date(2025, 1, 1))
    preview = fund.ledger.interest_to(fund.account(account), date(2024, 12, 31), policy)
    assert preview.product == Decimal("4269000.00")

    fund.on(date(2025, 1, 1))
    paid = fund.withdraw(account, None, "retirement", {"retirement_date": "2025-01-01"}, key="int2-close")
    assert paid["interest"] == "177.88"
    assert paid["amount"] == "26177.88"
    assert paid["state"] == CLOSED and paid["balance"] == "0.00"

    closed = fund.account(account)
    assert closed.close_reason == "withdrawal" and closed.export_state_code == "05"
    assert closed.interest_years["2024"]["closing"] is True
    interest_line = [line for line in fund.ledger.history(account)["lines"] if line["kind"] == "interest"]
    assert [(line["value_date"], line["amount"]) for line in interest_line] == [
        ("2024-06-30", "0.83"), ("2024-12-31", "177.88")]
    fund.assert_books(date(2024, 12, 31), date(2025, 1, 1))
    assert fund.ledger.trial_balance().balance("2101") == Money("26177.88")  # instructed, bank not yet answered

    fund.on(date(2025, 7, 2))
    assert fund.ledger.settle_interest(YEAR_END)["settled"] == 0  # a CLOSED account earns nothing more


@pytest.mark.storage
def test_int2_closing_on_1_july_after_the_year_was_settled_pays_no_more_interest(fund: Any) -> None:
    _, account = build_int1_account(fund, YEAR_END)
    fund.on(date(2025, 7, 1))
    fund.ledger.settle_interest(YEAR_END)
    paid = fund.withdraw(account, None, "leaving", {"reason": "出境定居"}, key="close-1-july")
    assert (paid["interest"], paid["amount"]) == ("0.00", "27363.38")
    fund.assert_books(YEAR_END, date(2025, 7, 1))


@pytest.mark.storage
def test_int2_closing_on_1_july_before_the_run_pays_the_whole_year(fund: Any) -> None:
    _, account = build_int1_account(fund, YEAR_END)
    fund.on(date(2025, 7, 1))
    paid = fund.withdraw(account, None, "retirement", {"retirement_date": "2025-07-01"}, key="close-before-run")
    assert (paid["interest"], paid["amount"]) == ("363.38", "27363.38")
    assert fund.ledger.settle_interest(YEAR_END)["settled"] == 0
    fund.assert_books(YEAR_END)


@pytest.mark.storage
def test_normal_sealed_and_frozen_accounts_all_earn(fund: Any) -> None:
    fund.on(date(2024, 6, 30))
    employer = fund.employer(ratio="10")
    accounts = [fund.member(employer, base="10000.00")[1] for _ in range(3)]
    fund.remit(employer, "2024-06", accounts)
    fund.on(date(2024, 8, 1))
    fund.ledger.seal(accounts[1], fund.today)
    fund.ledger.freeze(accounts[2], "court", "(2024)川0104执123号", fund.today)
    fund.on(date(2025, 7, 1))
    result = fund.ledger.settle_interest(YEAR_END)
    assert result["settled"] == 3
    expected = Money.of(Decimal("2000.00") * 365 * Decimal("0.015") / 360)  # 30.42
    assert [fund.balance(a) - Money("2000.00") for a in accounts] == [expected] * 3
    assert fund.ledger.balance(accounts[2])["export_code"] == "06"
    fund.assert_books(YEAR_END)


@pytest.mark.storage
def test_an_account_opened_after_the_year_is_skipped(fund: Any) -> None:
    fund.on(date(2025, 7, 1))
    employer = fund.employer()
    fund.member(employer)
    result = fund.ledger.settle_interest(YEAR_END)
    assert (result["settled"], result["skipped"]) == (0, 1)


def test_first_day_of_the_following_year_is_not_in_the_product() -> None:
    movements = int1_movements() + [(YEAR_END + timedelta(days=1), Decimal("99999.00"), "remittance")]
    assert daily_product_interest(movements, YEAR_START, YEAR_END, RATES).interest == Money("363.38")


@pytest.mark.storage
def test_int2_closing_before_the_yearly_run_settles_the_missed_year_first(fund: Any) -> None:
    _, account = build_int1_account(fund, YEAR_END)
    fund.on(date(2025, 7, 5))
    paid = fund.withdraw(account, None, "leaving", {"reason": "离开本市"}, key="close-5-july")
    carried = Money("27000.00") + Money("363.38")                     # the 2024/25 year, value-dated 30 June
    partial = Money.of(carried.amount * 4 * Decimal("0.015") / 360)   # 1–4 July 2025
    assert (paid["interest"], paid["amount"]) == (str(Money("363.38") + partial), str(carried + partial))
    years = fund.account(account).interest_years
    assert (years["2024"]["interest"], years["2024"]["closing"]) == (Money("363.38"), False)
    assert (years["2025"]["interest"], years["2025"]["end"]) == (partial, date(2025, 7, 4))
    fund.assert_books(YEAR_END, date(2025, 7, 4))


@pytest.mark.storage
def test_an_account_reopened_after_a_closing_earns_the_rest_of_the_year(fund: Any) -> None:
    _, account = build_int1_account(fund, date(2024, 7, 31))
    fund.on(date(2024, 8, 1))
    closing = fund.withdraw(account, None, "retirement", {"retirement_date": "2024-08-01"}, key="close-august")
    july = Money.of((Decimal("20000.00") * 31 + Decimal("1000.00") * 22) * Decimal("0.015") / 360)
    assert closing["interest"] == str(july)
    fund.ledger.settle_payout(closing["serial"], False, fund.today, "ICBC/20240801/F1")  # the bank sends it back
    assert fund.account(account).state == "SEALED"
    reopened = Money("21000.00") + july
    assert fund.balance(account) == reopened

    fund.on(date(2025, 7, 1))
    result = fund.ledger.settle_interest(YEAR_END)
    rest = Money.of(reopened.amount * 334 * Decimal("0.015") / 360)  # 1 August 2024 – 30 June 2025
    assert (result["settled"], result["interest"]) == (1, str(rest))
    year = fund.account(account).interest_years["2024"]
    assert (year["start"], year["end"], year["interest"], year["closing"]) == (YEAR_START, YEAR_END, july + rest,
                                                                               False)
    assert fund.ledger.settle_interest(YEAR_END)["settled"] == 0
    fund.assert_books(date(2024, 7, 31), YEAR_END)
