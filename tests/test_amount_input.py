"""MNY-1 at every entry point: the one amount parser ``parse_amount`` (issue 16).

An amount written as text is a decimal string with at most two places and nothing else: exponents,
separators, underscores, whitespace inside, a sign where the field is unsigned, NaN/Infinity, more
than two places, an empty text and anything above ``AMOUNT_MAX`` are refused naming the field and
the rule. Whatever it accepts equals ``Decimal(text)`` with two places.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.money import AMOUNT_MAX, Money, MoneyError, parse_amount, parse_rate

PROPERTY_EXAMPLES_MAX = 400
NUMBERISH = "0123456789.,_ eE+-nNaAiIfFtTyY\t\u3000\u00a0١٫"
PLAIN = re.compile(r"[ \t]*[+-]?[0-9]+(\.[0-9]{1,2})?[ \t]*", re.ASCII)


@pytest.mark.parametrize(("text", "amount"), [
    ("5", "5.00"), ("5.0", "5.00"), ("5.00", "5.00"), ("0.01", "0.01"), ("007", "7.00"), (" 12.30 ", "12.30"),
    ("9999999999999.99", "9999999999999.99"),
])
def test_a_plain_decimal_string_is_read_exactly(text: str, amount: str) -> None:
    money = parse_amount(text, "amount")
    assert str(money) == amount and money.amount.as_tuple().exponent == -2


@pytest.mark.parametrize(("text", "words"), [
    ("1e3", "exponent"), ("1E+30", "exponent"), ("1e30", "exponent"), ("1.5e2", "exponent"),
    ("1,5", "separator"), ("1,000.00", "separator"), ("1，000", "separator"),
    ("1_000", "underscore"),
    ("1 000", "whitespace"), ("1\u3000000", "whitespace"), ("1\n000", "whitespace"),
    ("-5.00", "negative"), ("+5.00", "sign"),
    ("NaN", "NaN"), ("nan", "NaN"), ("Infinity", "infinity"), ("-inf", "infinity"), ("sNaN", "NaN"),
    ("5.001", "2 decimal"), ("5.000", "2 decimal"), ("0.005", "2 decimal"),
    ("", "required"), ("   ", "required"),
    ("99999999999999999999.99", "digits before the point"), ("10000000000000", "digits before the point"),
    ("1" * 200, "longer than"), (".5", "not a decimal"), ("5.", "not a decimal"), ("٥", "not a decimal"),
    ("0x10", "not a decimal"), ("1.2.3", "not a decimal"), ("5\x00", "not a decimal"),
])
def test_anything_else_is_refused_naming_the_field_and_the_rule(text: str, words: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_amount(text, "bank_amount")
    error = refused.value
    assert error.field == "bank_amount" and error.rule_id == "MNY-1"
    assert words in error.rule, error.rule
    assert str(error).startswith("bank_amount: ") and str(error).endswith("[MNY-1]")


def test_signed_fields_take_a_sign_and_positive_fields_refuse_zero() -> None:
    assert parse_amount("-5.10", "amount", signed=True) == Money("-5.10")
    assert parse_amount("-0", "amount", signed=True) == Money("0.00")
    assert str(parse_amount("-0", "amount", signed=True)) == "0.00"
    with pytest.raises(MoneyError) as refused:
        parse_amount("0.00", "amount", positive=True)
    assert "zero" in refused.value.rule
    with pytest.raises(MoneyError):
        parse_amount("-99999999999999.00", "amount", signed=True)


@pytest.mark.parametrize("value", [1.5, 5, None, b"5.00", Decimal("5")])
def test_only_text_is_parsed(value: object) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_amount(value, "amount")  # type: ignore[arg-type]
    assert refused.value.field == "amount" and refused.value.rule_id == "MNY-1"


def test_money_parse_hands_text_to_the_one_parser_and_bounds_numbers_too() -> None:
    for text in ("1e3", "1,5", "1_000"):
        with pytest.raises(MoneyError):
            Money.parse(text, "amount")
    with pytest.raises(MoneyError) as refused:
        Money.parse(Decimal("1E+30"), "amount")
    assert "largest amount" in refused.value.rule
    assert Money.parse(Decimal("9999999999999.99")) == AMOUNT_MAX


@pytest.mark.parametrize("text", ["1e1", "1,5", "1_0", "2 .85", "Infinity"])
def test_rates_use_the_same_grammar(text: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_rate(text, "ratio")
    assert refused.value.field == "ratio" and refused.value.rule_id == "MNY-3"


def _check(text: str) -> None:
    try:
        money = parse_amount(text, "amount")
    except MoneyError as error:
        assert error.field == "amount" and error.rule_id == "MNY-1", error
        assert str(error).startswith("amount: ") and str(error).endswith("[MNY-1]")
        return
    assert PLAIN.fullmatch(text), text  # nothing but digits, a point, two places, surrounding blanks
    assert money.amount == Decimal(text) and money.amount.as_tuple().exponent == -2
    assert Money.zero() <= money <= AMOUNT_MAX
    assert parse_amount(str(money), "amount") == money  # round-trips to the same digits


@settings(max_examples=PROPERTY_EXAMPLES_MAX, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=NUMBERISH, max_size=24)))
@example("1e3")
@example("1,5")
@example("1_000")
@example(" 0.10 ")
def test_any_text_is_either_the_same_digits_or_refused_with_the_rule(text: str) -> None:
    _check(text)


@settings(max_examples=PROPERTY_EXAMPLES_MAX // 2, deadline=None)
@given(st.decimals(min_value=Decimal(0), max_value=AMOUNT_MAX.amount, places=2, allow_nan=False,
                   allow_infinity=False))
def test_every_amount_the_ledger_writes_reads_back(amount: Decimal) -> None:
    assert parse_amount(str(amount), "amount").amount == amount
    _check(f"{amount:f}")
