"""MNY-1 (one money type, two decimals, ROUND_HALF_UP 四舍五入) and MNY-3 (percent-string rates)."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.money import ZERO, Money, MoneyError, parse_rate, percent, round_fen, round_yuan


# -- MNY-1 inputs ---------------------------------------------------------------------
@pytest.mark.parametrize("value", ["5", "5.0", "5.00", 5, Decimal("5"), Decimal("5.0"), Decimal("5.00"), " 5.00 "])
def test_five_in_every_accepted_spelling_is_five_yuan_zero_fen(value: object) -> None:
    money = Money.parse(value, "amount")
    assert money == Money("5.00")
    assert str(money) == "5.00"
    assert money.amount.as_tuple().exponent == -2


@pytest.mark.parametrize("value", [5.0, 0.1, float("nan"), float("inf")])
def test_a_float_is_refused_naming_the_field(value: float) -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse(value, "employer_amount")
    assert refused.value.field == "employer_amount"
    assert "employer_amount" in str(refused.value)
    assert "float" in refused.value.rule


@pytest.mark.parametrize("value", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"),
                                   Decimal("Infinity")])
def test_nan_and_infinity_are_refused_naming_the_field(value: object) -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse(value, "price")
    assert refused.value.field == "price"
    assert "price" in str(refused.value)


@pytest.mark.parametrize("value", ["5.001", "5.000", "0.005", Decimal("1.234"), Decimal("5.000"), "1e-3"])
def test_more_than_two_decimals_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse(value, "amount")
    assert refused.value.field == "amount"
    assert "2 decimal" in refused.value.rule


@pytest.mark.parametrize("value", ["", "   ", "abc", "5,00.0.0", True, None, [5]])
def test_other_junk_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse(value, "base")
    assert refused.value.field == "base"


def test_zero_is_refused_where_money_moves_and_accepted_elsewhere() -> None:
    for zero in ("0", "0.00", 0, Decimal("0")):
        with pytest.raises(MoneyError) as refused:
            Money.parse(zero, "amount", positive=True)
        assert "zero" in refused.value.rule
        assert Money.parse(zero, "retained_balance_min") == ZERO


def test_a_negative_only_where_a_format_says_so() -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse("-1.00", "amount")
    assert "negative" in refused.value.rule
    assert Money.parse("-1.00", "adjustment", allow_negative=True) == Money("-1.00")


def test_thousands_separators_are_written_for_people_but_refused_on_input() -> None:
    # issue 16: "1,5" was read as 15.00; MNY-1 input is a plain decimal string (test_amount_input.py)
    with pytest.raises(MoneyError) as refused:
        Money.parse("2,067.79")
    assert refused.value.field == "amount" and "separator" in refused.value.rule
    assert Money("500000").formatted() == "500,000.00"
    assert repr(Money("1")) == "Money('1.00')"


# -- MNY-1 rounding ------------------------------------------------------------------
@pytest.mark.parametrize(("exact", "fen"), [
    ("0.005", "0.01"), ("0.015", "0.02"), ("0.125", "0.13"), ("2.675", "2.68"), ("177.875", "177.88"),
    ("363.37499", "363.37"), ("-0.005", "-0.01"), ("0.004999", "0.00"),
])
def test_round_fen_is_half_up(exact: str, fen: str) -> None:
    assert round_fen(Decimal(exact)) == Decimal(fen)


def test_round_yuan_is_half_up_and_keeps_two_places() -> None:
    assert round_yuan(Decimal("933.24")) == Decimal("933.00")
    assert round_yuan(Decimal("932.50")) == Decimal("933.00")
    assert str(round_yuan(Decimal("932.49"))) == "932.00"


def test_computed_values_round_through_the_one_function() -> None:
    assert Money.of(Decimal("7777.00") * Decimal("0.12")) == Money("933.24")
    assert Money("7777.00").times(Decimal("0.125")) == Money("972.13")  # 972.125 half up
    with pytest.raises(MoneyError):
        Money("1.00").times(0.5)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money.of(0.5)  # type: ignore[arg-type]


def test_the_constructor_refuses_to_lose_a_fen() -> None:
    with pytest.raises(MoneyError):
        Money("1.234")
    assert Money("1.230") == Money("1.23")  # a computed trailing zero loses nothing


# -- the money type ---------------------------------------------------------------------
def test_money_does_not_mix_with_floats_or_numbers() -> None:
    with pytest.raises(TypeError):
        Money("1.00") + 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        Money("1.00") < 2  # type: ignore[operator]
    assert Money("1.00") != Decimal("1.00")
    assert sum([Money("1.10"), Money("2.20")]) == Money("3.30")
    assert Money.sum([]) == ZERO


def test_money_is_immutable_hashable_and_pickles_exactly() -> None:
    money = Money("933.24")
    with pytest.raises(AttributeError):
        money.amount = Decimal(1)  # type: ignore[misc]
    assert {money: 1}[Money("933.24")] == 1
    assert pickle.loads(pickle.dumps(money)) == money
    assert (-money).is_negative and abs(-money) == money
    assert money.min(Money("1")) == Money("1") and money.max(Money("1")) == money


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=Decimal("-1000000000"), max_value=Decimal("1000000000"), places=2,
                   allow_nan=False, allow_infinity=False))
def test_any_two_place_amount_round_trips_as_text(amount: Decimal) -> None:
    money = Money.parse(str(amount), "amount", allow_negative=True)
    assert money.amount == amount
    assert Money.parse(str(money), "amount", allow_negative=True) == money


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=6,
                   allow_nan=False, allow_infinity=False))
def test_round_fen_is_idempotent_and_within_half_a_fen(value: Decimal) -> None:
    rounded = round_fen(value)
    assert round_fen(rounded) == rounded
    assert abs(rounded - value) <= Decimal("0.005")


# -- MNY-3 rates ------------------------------------------------------------------------
def test_rates_are_percent_strings() -> None:
    assert parse_rate("2.85") == Decimal("2.85")
    assert parse_rate(Decimal("1.50")) == Decimal("1.50")
    assert percent(parse_rate("2.85")) == Decimal("0.0285")
    assert parse_rate("3.575") == Decimal("3.575")


@pytest.mark.parametrize(("value", "words"), [
    (2.85, "float"), ("0", "above zero"), ("-1", "above zero"), ("NaN", "NaN"), ("abc", "not a decimal"),
    ("1.0000001", "decimal places"),
])
def test_a_bad_rate_is_refused_naming_the_field(value: object, words: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_rate(value, "annual_rate")
    assert refused.value.field == "annual_rate"
    assert words in refused.value.rule


def test_a_loan_rate_is_above_zero_and_at_most_ten_percent() -> None:
    assert parse_rate("10", maximum=Decimal(10)) == Decimal(10)
    with pytest.raises(MoneyError) as refused:
        parse_rate("10.01", "annual_rate", maximum=Decimal(10))
    assert "at most 10" in refused.value.rule


def test_daily_and_monthly_rates_divide_the_annual_rate() -> None:
    annual = percent(parse_rate("1.50"))
    assert (annual / 360).quantize(Decimal("0.00000001")) == Decimal("0.00004167")
    assert Money("500000.00").times(percent(parse_rate("2.85")) / 12) == Money("1187.50")


@pytest.mark.parametrize("text", ["0.00", "12.34", "-5.10", "1234567.89", "5", "1.5", "1,000.00"])
def test_stored_money_reads_what_the_ledger_wrote_and_checks_anything_else(text):
    assert Money.stored(text) == Money(text) and str(Money.stored(text)) == str(Money(text))


@pytest.mark.parametrize("text", ["1.005", "NaN", "Infinity", "abc", ""])
def test_stored_money_refuses_what_money_refuses(text):
    with pytest.raises(MoneyError):
        Money.stored(text)
