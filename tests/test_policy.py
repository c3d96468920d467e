"""Dated policy (every ⚙ of SPEC.md): loading, validation naming the key, inheritance, CON-1 share rounding."""

from __future__ import annotations

import copy
import tomllib
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import pytest

from ledger.money import Money
from ledger.policy import DEFAULT_POLICY, Policy, PolicyError, load_policy, parse_policy
from ledger.services.accounts import share



def sample_policy_data() -> dict[str, Any]:
    text = resources.files("ledger.policies").joinpath(DEFAULT_POLICY).read_text("utf-8")
    return tomllib.loads(text)


def data_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(sample_policy_data())
    change(data)
    return data


def test_the_shipped_policy_loads_with_the_spec_defaults() -> None:
    policy = load_policy()
    version = policy.at(date(2025, 1, 15))
    assert version.account.retained_balance_min == Money("0.00")
    assert version.contribution.share_rounding == "fen"
    assert (version.contribution.ratio_min, version.contribution.ratio_max) == (Decimal(5), Decimal(12))
    assert version.interest.method == "daily_product"
    assert version.interest.year_start_month == 7
    assert version.interest.rate_on(date(2024, 7, 1)) == Decimal("1.50")
    assert version.time.value_date_backdate_days_max == 31
    assert version.time.interest_day_count == "actual"


def test_interest_rate_table_starts_2016_02_21() -> None:
    rates = load_policy().at(date(2020, 1, 1)).interest
    assert rates.rate_on(date(2016, 2, 21)) == Decimal("1.50")
    with pytest.raises(PolicyError, match="no rate in force"):
        rates.rate_on(date(2016, 2, 20))


def test_no_version_before_the_first_effective_date() -> None:
    with pytest.raises(PolicyError, match="no policy version in force"):
        load_policy().at(date(1999, 12, 31))


def test_withdrawal_kinds_by_name_or_national_code() -> None:
    withdrawal = load_policy().at(date(2025, 1, 1)).withdrawal
    assert withdrawal.kind("rent") == withdrawal.kind("07")
    assert withdrawal.kind("07").evidence == ("contract_number", "monthly_rent", "months")
    closing = {k.code for k in withdrawal.kinds if k.closing}
    assert closing == {"03", "04", "05", "08"}  # WD-2 closing kinds
    assert withdrawal.kind("lottery") is None


def test_unknown_response_code_is_the_centres_and_not_retryable() -> None:
    offset = load_policy().at(date(2025, 1, 1)).offset
    assert offset.response("E0001").retryable and offset.response("E0001").cause == "borrower"
    unknown = offset.response("E9999", "新错误")
    assert (unknown.retryable, unknown.cause) == (False, "centre")


def test_a_later_version_names_only_what_changes_and_inherits_the_rest() -> None:
    def add_version(data: dict[str, Any]) -> None:
        data["versions"].append({"effective_from": date(2025, 1, 1), "account": {"retained_balance_min": "0.01"}})

    policy = parse_policy(data_with(add_version))
    assert policy.at(date(2024, 12, 31)).account.retained_balance_min == Money("0.00")
    assert policy.at(date(2025, 1, 1)).account.retained_balance_min == Money("0.01")
    assert policy.at(date(2025, 1, 1)).contribution == policy.at(date(2024, 12, 31)).contribution


@pytest.mark.parametrize(("change", "named"), [
    (lambda d: d["versions"][0]["account"].__setitem__("retained_balance_min", 0.01),
     "versions[0].account.retained_balance_min"),
    (lambda d: d["versions"][0]["contribution"].__setitem__("share_rounding", "jiao"),
     "versions[0].contribution.share_rounding"),
    (lambda d: d["versions"][0]["contribution"].__setitem__("base_floor", "2330.001"),
     "versions[0].contribution.base_floor"),
    (lambda d: d["versions"][0]["interest"]["rates"][0].__setitem__("annual_rate", "0"),
     "versions[0].interest.rates.0.annual_rate"),
    (lambda d: d["versions"][0]["offset"].__setitem__("colour", "red"), "versions[0].offset.colour"),
    (lambda d: d["versions"][0].pop("loan"), "versions[0].loan"),
    (lambda d: d.__setitem__("mayor", "x"), "mayor"),
    (lambda d: d.pop("centre_code"), "centre_code"),
])
def test_a_bad_policy_is_refused_naming_the_key(change: Callable[[dict[str, Any]], None], named: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(data_with(change))
    assert str(refused.value).startswith(named), str(refused.value)


def test_versions_must_be_strictly_increasing() -> None:
    def repeat(data: dict[str, Any]) -> None:
        data["versions"].append({"effective_from": data["versions"][0]["effective_from"]})

    with pytest.raises(PolicyError, match="strictly increasing"):
        parse_policy(data_with(repeat))


def test_a_policy_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("centre_name = ", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(bad)


def test_a_variant_changes_one_parameter(make_policy: Callable[..., Policy]) -> None:
    shanghai = make_policy(contribution={"share_rounding": "yuan"})
    bijie = make_policy(account={"retained_balance_min": "0.01"})
    assert shanghai.at(date(2025, 1, 1)).contribution.share_rounding == "yuan"
    assert bijie.at(date(2025, 1, 1)).account.retained_balance_min == Money("0.01")
    assert bijie.at(date(2025, 1, 1)).contribution.share_rounding == "fen"


# -- CON-1 worked numbers ------------------------------------------------------------------
def test_con1_each_share_is_rounded_to_the_fen() -> None:
    assert share(Money("7777.00"), Decimal("12"), "fen") == Money("933.24")


def test_con1_yuan_rounding_gives_933(make_policy: Callable[..., Policy]) -> None:
    rounding = make_policy(contribution={"share_rounding": "yuan"}).at(date(2025, 1, 1)).contribution.share_rounding
    assert share(Money("7777.00"), Decimal("12"), rounding) == Money("933.00")


@pytest.mark.parametrize(("base", "ratio", "fen", "yuan"), [
    ("2330.00", "5", "116.50", "117.00"),     # 116.50 half up to the yuan
    ("32969.00", "12", "3956.28", "3956.00"),
    ("4166.67", "12", "500.00", "500.00"),    # 500.0004
    ("3333.38", "7.5", "250.00", "250.00"),   # 250.0035 -> 250.00
    ("3333.40", "7.5", "250.01", "250.00"),   # 250.005 half up
])
def test_share_rounding_is_half_up_on_each_share(base: str, ratio: str, fen: str, yuan: str) -> None:
    assert share(Money(base), Decimal(ratio), "fen") == Money(fen)
    assert share(Money(base), Decimal(ratio), "yuan") == Money(yuan)
