"""The checkers every entry point shares (issue 16): text (TXT-1), dates (MNY-4, BNK-2) and the amount
ceilings of the dated policy (MNY-1 ⚙ limits), and the use cases that apply the ceilings."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from ledger.aggregates.errors import ValueDateError
from ledger.dates import DATE_MAX, DATE_MIN, DateInputError, parse_date, parse_host_date
from ledger.money import Money, MoneyError
from ledger.policy import PolicyError, load_policy, parse_policy
from ledger.projections import tables
from ledger.text import CODE_CHARS_MAX, NAME_CHARS_MAX, TextFieldError, check_code, check_name, check_text
from conftest import sample_policy_data


# -- TXT-1 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["张伟", "欧阳·娜娜", "O'Brien-Smith", "ICBC/20250217/50026033", "(2025)京01执123号",
                                  "a b", "\u3000名\u3000", "é", "𠀀"])
def test_text_people_and_banks_write_is_kept_as_given(text: str) -> None:
    assert check_name(text, "name") is text
    assert check_code(text, "reference") is text


@pytest.mark.parametrize(("text", "words"), [
    ("A\x00B", "control"), ("\t", "control"), ("line\nbreak", "control"), ("\x7f", "control"), ("\x85", "control"),
    ("\u202aX", "format"), ("\u202eX", "format"), ("\u2066X", "format"), ("\u2069", "format"), ("\u200bX", "format"),
    ("\ufeffX", "format"), ("\ud800", "surrogate"), ("a\u2028b", "line separator"), ("a\u2029b", "paragraph"),
    ("   ", "blank"), ("\u3000", "blank"), ("", "required"),
])
def test_text_the_ledger_does_not_store_is_refused_naming_the_field(text: str, words: str) -> None:
    with pytest.raises(TextFieldError) as refused:
        check_text(text, "bank_reference")
    assert refused.value.field == "bank_reference" and refused.value.rule == "TXT-1"
    assert words in str(refused.value) and str(refused.value).endswith("[TXT-1]")


def test_lengths_are_the_read_sides_columns() -> None:
    assert (tables.CODE, tables.NAME) == (CODE_CHARS_MAX, NAME_CHARS_MAX)
    assert tables.members.c.name.type.length == NAME_CHARS_MAX
    assert tables.account_lines.c.reference.type.length == NAME_CHARS_MAX
    check_name("名" * NAME_CHARS_MAX, "name")
    check_code("R" * CODE_CHARS_MAX, "reference")
    for checker, size in ((check_name, NAME_CHARS_MAX), (check_code, CODE_CHARS_MAX)):
        with pytest.raises(TextFieldError):
            checker("x" * (size + 1), "field")
    with pytest.raises(TextFieldError):
        check_code(5, "reference")  # type: ignore[arg-type]
    assert check_code("", "serial", required=False) == ""


# -- dates --------------------------------------------------------------------------------------------
def test_dates_are_real_days_in_range() -> None:
    assert parse_date("2025-02-28", "on") == date(2025, 2, 28)
    assert parse_host_date("20250217") == date(2025, 2, 17)
    assert parse_date(DATE_MAX.isoformat(), "as_of") == DATE_MAX and parse_date("1900-01-01", "as_of") == DATE_MIN


@pytest.mark.parametrize(("parse", "text", "field", "rule"), [
    (parse_date, "9999-12-31", "as_of", "MNY-4"), (parse_date, "0001-01-01", "as_of", "MNY-4"),
    (parse_date, "2025-02-30", "as_of", "MNY-4"), (parse_date, "20250217", "as_of", "MNY-4"),
    (parse_date, "2025-W07-1", "as_of", "MNY-4"), (parse_date, "２０２５-02-17", "as_of", "MNY-4"),
    (parse_date, "2025-02-17\n", "as_of", "MNY-4"), (parse_date, None, "as_of", "MNY-4"),
    (parse_host_date, "20261340", "host_date", "BNK-2"), (parse_host_date, "2025-02-17", "host_date", "BNK-2"),
    (parse_host_date, "99991231", "host_date", "MNY-4"),
])
def test_a_date_that_is_not_a_real_day_in_range_is_refused(parse: Any, text: Any, field: str, rule: str) -> None:
    with pytest.raises(DateInputError) as refused:
        parse(text, field)
    assert (refused.value.field, refused.value.rule) == (field, rule)


# -- ceilings in the dated policy -------------------------------------------------------------------------
def test_the_shipped_policy_has_a_ceiling_for_each_kind() -> None:
    limits = load_policy().at(date(2025, 1, 1)).limits
    assert limits.amount_max == Money("1000000000.00")
    assert limits.ceiling("receipt") == Money("500000000.00")
    assert limits.ceiling("withdrawal") == Money("5000000.00")
    assert limits.ceiling("remittance_line") == Money("100000.00")
    assert limits.check_repayment(Money("300000.00"), Money("200000.00")) == Money("300000.00")
    with pytest.raises(MoneyError) as refused:
        limits.check_repayment(Money("300000.01"), Money("200000.00"))
    assert refused.value.field == "amount" and refused.value.rule_id == "MNY-1"
    with pytest.raises(MoneyError):
        limits.check("receipt", Money("500000000.01"))


def test_ceilings_are_dated_policy_and_amount_max_caps_every_other() -> None:
    data = copy.deepcopy(sample_policy_data())
    data["versions"].append({"effective_from": date(2026, 1, 1), "limits": {"amount_max": "1000.00"}})
    policy = parse_policy(data)
    assert policy.at(date(2025, 12, 31)).limits.ceiling("withdrawal") == Money("5000000.00")
    assert policy.at(date(2026, 1, 1)).limits.ceiling("withdrawal") == Money("1000.00")


@pytest.mark.parametrize(("key", "value"), [("amount_max", "99999999999999.00"), ("amount_max", "0.00"),
                                            ("receipt_amount_max", "1e9"), ("withdrawal_amount_max", "5,000.00"),
                                            ("repayment_excess_max", 100000.0), ("remittance_line_amount_max", 5)])
def test_a_bad_ceiling_refuses_the_policy_naming_the_key(key: str, value: Any) -> None:
    data = copy.deepcopy(sample_policy_data())
    data["versions"][0]["limits"][key] = value
    with pytest.raises(PolicyError) as refused:
        parse_policy(data)
    assert "versions[0].limits" in str(refused.value)


def test_a_policy_amount_goes_through_the_one_parser() -> None:
    data = copy.deepcopy(sample_policy_data())
    data["versions"][0]["account"]["retained_balance_min"] = "0,01"
    with pytest.raises(PolicyError) as refused:
        parse_policy(data)
    assert "retained_balance_min" in str(refused.value) and "separator" in str(refused.value)


# -- the use cases apply them before anything is written -------------------------------------------------
def test_a_receipt_and_a_withdrawal_above_their_ceiling_change_nothing(fund: Any) -> None:
    employer = fund.employer()
    _number, account = fund.member(employer)
    fund.remit(employer, fund.today.strftime("%Y-%m"), [account])
    before = fund.fingerprint()
    with pytest.raises(MoneyError) as refused:
        fund.pay("500000000.01")
    assert refused.value.field == "amount" and "receipt ceiling" in refused.value.rule
    with pytest.raises(MoneyError) as refused:
        fund.withdraw(account, "5000000.01")
    assert refused.value.field == "amount" and "withdrawal ceiling" in refused.value.rule
    assert fund.fingerprint() == before
    fund.assert_books()


def test_a_remittance_line_above_its_ceiling_is_reported_and_left_out(fund: Any) -> None:
    from ledger.services.contributions import RemittanceLine

    employer = fund.employer()
    _number, account = fund.member(employer)
    period = fund.today.strftime("%Y-%m")
    line = RemittanceLine(1, account, Money("7777.00"), Money("100000.01"), Money("933.24"))
    result = fund.ledger.register_remittance(employer, period, "remittance", "D-CEIL", [line], fund.today)
    assert result["accepted"] == 0
    assert [(p["field"], p["rule"]) for p in result["problem_rows"]] == [("employer_amount", "MNY-1")]
    assert "remittance line ceiling" in result["problem_rows"][0]["message"]


def test_a_future_or_impossible_host_date_is_refused_by_the_receipt_itself(fund: Any) -> None:
    before = fund.fingerprint()
    tomorrow = date.fromordinal(fund.today.toordinal() + 1)
    for host_date, rule in ((f"{tomorrow:%Y%m%d}", "MNY-4"), ("20241340", "BNK-2"), ("2024-06-01", "BNK-2")):
        with pytest.raises(ValueDateError) as refused:
            fund.ledger.receive("ICBC", host_date, "H1", "3100000001", "10.00", fund.today)
        assert (refused.value.field, refused.value.rule) == ("host_date", rule)
    assert fund.fingerprint() == before
