"""Dated policy parameters: every ⚙ of the rules (docs/rules.md) lives here, never in code.

A policy file (TOML) holds the centre's identity and a list of ``versions``,
each effective from a date; a later version names only what changes and
inherits the rest. Loading validates every merged version and names the bad
key (``versions[2].offset.cover_test: ...``). Business code asks
``policy.at(day).offset.shortfall_rule`` and events record the values used.
Floats are refused: amounts and rates are strings (MNY-1, MNY-3).
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ledger.money import AMOUNT_MAX, Money, MoneyError, parse_amount, parse_rate

DEFAULT_POLICY = "sample-city.toml"
POLICY_FILE_BYTES_MAX = 1024 * 1024
POLICY_TEXT_CHARS_MAX = 200


class PolicyError(ValueError):
    """The policy file is invalid; the message names the key (``versions[1].loan.grace_days: …``) and prints
    its rule last, ``[POLICY]`` unless the message names a rule of its own."""

    rule = "POLICY"

    def __str__(self) -> str:
        text = super().__str__()
        return text if text.endswith("]") else f"{text} [{self.rule}]"


def _no_float(value: Any, info: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("floats are refused; write the number as a string (MNY-1)")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _money_field(value: Any) -> Money:
    """A policy amount: a string read by the one amount parser (MNY-1)."""
    if isinstance(value, Money):
        return value
    try:
        return parse_amount(value, "value")
    except MoneyError as exc:
        raise ValueError(exc.rule) from None


def _rate_field(value: Any) -> Decimal:
    try:
        return parse_rate(value, "value")
    except MoneyError as exc:
        raise ValueError(exc.rule) from None


class TimePolicy(_Section):
    value_date_backdate_days_max: int
    interest_day_count: Literal["actual", "30/360"]
    prepayment_day_count: Literal["actual", "30/360"]
    penalty_day_count: Literal["actual", "30/360"]


class MemberPolicy(_Section):
    id_type: Literal["resident"]
    retirement_age_male: int
    retirement_age_female: int


class AccountPolicy(_Section):
    retained_balance_min: Money
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    _v = field_validator("retained_balance_min", mode="before")(lambda v: _money_field(_no_float(v, None)))


class ContributionPolicy(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    ratio_min: Decimal
    ratio_max: Decimal
    ratios_equal: bool
    share_rounding: Literal["fen", "yuan"]
    base_floor: Money
    base_cap: Money
    self_employed_pays_both: bool
    deferral_backpay_deadline_months: int

    _r = field_validator("ratio_min", "ratio_max", mode="before")(lambda v: _rate_field(_no_float(v, None)))
    _m = field_validator("base_floor", "base_cap", mode="before")(lambda v: _money_field(_no_float(v, None)))


class InterestRate(_Section):
    effective_from: date
    annual_rate: Decimal
    _r = field_validator("annual_rate", mode="before")(lambda v: _rate_field(_no_float(v, None)))


class InterestPolicy(_Section):
    year_start_month: int
    method: Literal["daily_product", "carried_plus_flows"]
    daily_rate: Literal["exact", "rounded"]
    rates: tuple[InterestRate, ...]

    def rate_on(self, day: date) -> Decimal:
        in_force = [r for r in self.rates if r.effective_from <= day]
        if not in_force:
            raise PolicyError(f"interest.rates: no rate in force on {day}")
        return max(in_force, key=lambda r: r.effective_from).annual_rate


class WithdrawalKind(_Section):
    kind: str
    code: str
    evidence: tuple[str, ...]
    closing: bool
    next_allowed_days: int


class WithdrawalPolicy(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    kinds: tuple[WithdrawalKind, ...]
    purchase_window_months: int
    rent_monthly_cap: Money
    _m = field_validator("rent_monthly_cap", mode="before")(lambda v: _money_field(_no_float(v, None)))

    def kind(self, name: str) -> WithdrawalKind | None:
        return next((k for k in self.kinds if k.kind == name or k.code == name), None)


class LoanRate(_Section):
    effective_from: date
    first_short: Decimal
    first_long: Decimal
    second_short: Decimal
    second_long: Decimal
    _r = field_validator("first_short", "first_long", "second_short", "second_long", mode="before")(
        lambda v: _rate_field(_no_float(v, None))
    )


class LoanPolicy(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    term_months_max: int
    retirement_extension_years: int
    age_plus_term_max: int
    cap_single: Money
    cap_family: Money
    balance_multiple: Decimal
    loan_to_value_max: Decimal
    income_share_max: Decimal
    continuous_periods_required: int
    grace_days: int
    penalty_multiplier: Decimal
    prepayment_blackout_days: int
    prepayment_minimum: Money
    missed_in_row_max: int
    missed_total_max: int
    due_day: int
    rates: tuple[LoanRate, ...]

    _m = field_validator("cap_single", "cap_family", "prepayment_minimum", mode="before")(
        lambda v: _money_field(_no_float(v, None))
    )
    _r = field_validator("balance_multiple", "loan_to_value_max", "income_share_max", "penalty_multiplier", mode="before")(
        lambda v: _rate_field(_no_float(v, None))
    )

    def rate_on(self, day: date, *, months: int, second_home: bool = False) -> Decimal:
        """LN-2: the rate in force on ``day`` for the tier (≤ 5 years / > 5 years)."""
        in_force = [r for r in self.rates if r.effective_from <= day]
        if not in_force:
            raise PolicyError(f"loan.rates: no rate in force on {day}")
        row = max(in_force, key=lambda r: r.effective_from)
        long_term = months > 60
        if second_home:
            return row.second_long if long_term else row.second_short
        return row.first_long if long_term else row.first_short


class ResponseCode(_Section):
    code: str
    message: str
    retryable: bool
    cause: Literal["none", "borrower", "bank", "centre"]


class OffsetPolicy(_Section):
    spouse_pays: bool
    sealed_pays: bool
    frozen_pays: bool
    cover_test: Literal[">=", ">"]
    shortfall_rule: Literal["waterfall", "household-all-or-nothing", "each-account-whole"]
    takes_overdue: bool
    effective_after_regular_repayment: bool
    retry_count_max: int
    notice_days_before: int
    response_codes: tuple[ResponseCode, ...]

    def response(self, code: str, message: str = "") -> ResponseCode:
        """OFF-3: an unknown code is the centre's, not retryable, for manual handling."""
        for row in self.response_codes:
            if row.code == code:
                return row
        for row in self.response_codes:
            if message and row.message == message:
                return row
        return ResponseCode(code=code, message=message or "unknown", retryable=False, cause="centre")


class LimitPolicy(_Section):
    """Amount ceilings per kind, checked before anything is written (MNY-1, issue 16). ``amount_max`` is the
    absolute ceiling of any one amount and caps every other; it is at most ``AMOUNT_MAX``, what the read
    model's int64 fen columns hold with room for sums. A repayment may be at most what can be owed
    (outstanding principal + amount due) plus ``repayment_excess_max``."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    amount_max: Money
    receipt_amount_max: Money
    withdrawal_amount_max: Money
    remittance_line_amount_max: Money
    repayment_excess_max: Money

    _m = field_validator("amount_max", "receipt_amount_max", "withdrawal_amount_max", "remittance_line_amount_max",
                         "repayment_excess_max", mode="before")(lambda v: _money_field(_no_float(v, None)))

    @model_validator(mode="after")
    def _within_the_absolute_ceiling(self) -> "LimitPolicy":
        if self.amount_max > AMOUNT_MAX or self.amount_max.is_zero:
            raise ValueError(f"amount_max must be above 0.00 and at most {AMOUNT_MAX} (int64 fen) [MNY-1]")
        return self

    def ceiling(self, kind: str) -> Money:
        """The ceiling of one ``kind`` of amount (receipt, withdrawal, remittance_line), within amount_max."""
        return getattr(self, f"{kind}_amount_max").min(self.amount_max)

    def check(self, kind: str, money: Money, field: str = "amount") -> Money:
        """``money`` if within the ceiling of ``kind``, else refused naming ``field`` (MNY-1)."""
        ceiling = self.ceiling(kind)
        if money > ceiling:
            raise MoneyError(field, f"MNY-1 {money} is above the {kind.replace('_', ' ')} ceiling {ceiling} "
                             f"(policy limits)")
        return money

    def check_repayment(self, money: Money, owed: Money, field: str = "amount") -> Money:
        """A repayment: at most what can be owed plus the plausible excess, and at most amount_max."""
        ceiling = (owed + self.repayment_excess_max).min(self.amount_max)
        if money > ceiling:
            raise MoneyError(field, f"MNY-1 a repayment of {money} is above what can be owed ({owed}) plus "
                             f"{self.repayment_excess_max} (policy limits.repayment_excess_max)")
        return money


class BankPolicy(_Section):
    centre_account: str
    centre_account_name: str
    encoding: Literal["GBK", "GB18030"]
    in_transit_working_days: int


class PolicyVersion(_Section):
    effective_from: date
    time: TimePolicy
    member: MemberPolicy
    account: AccountPolicy
    contribution: ContributionPolicy
    interest: InterestPolicy
    withdrawal: WithdrawalPolicy
    loan: LoanPolicy
    offset: OffsetPolicy
    bank: BankPolicy
    limits: LimitPolicy


# Loan terms fixed when a loan is disbursed: recorded in its Disbursed event (LN-4, LN-6, LN-7) and kept for its
# life. A later policy version changes them for loans disbursed from its date on, never for running loans
# (docs/adr/0015-loan-terms-fixed-at-disbursement.md). term name in a loan's terms -> (section, key, rule).
DISBURSEMENT_TERMS = {
    "grace_days": ("loan", "grace_days", "LN-7"),
    "penalty_multiplier": ("loan", "penalty_multiplier", "LN-7"),
    "penalty_day_count": ("time", "penalty_day_count", "LN-7"),
    "prepayment_day_count": ("time", "prepayment_day_count", "LN-6"),
    "prepayment_blackout_days": ("loan", "prepayment_blackout_days", "LN-6"),
    "prepayment_minimum": ("loan", "prepayment_minimum", "LN-6"),
    "due_day": ("loan", "due_day", "LN-4"),
}


@dataclass(frozen=True)
class TermChange:
    """A later policy version changing a term loans keep from their disbursement (ADR 0015)."""

    effective_from: date
    term: str
    key: str
    before: Any
    after: Any
    rule: str

    def __str__(self) -> str:
        return (f"{self.key}: {self.before} -> {self.after} from {self.effective_from} applies to loans disbursed "
                f"from that day; running loans keep the terms they were disbursed with [{self.rule}]")


@dataclass(frozen=True)
class Policy:
    """The centre's dated policy; ``at(day)`` gives the version in force."""

    centre_name: str
    centre_code: str
    city: str
    versions: tuple[PolicyVersion, ...]
    source: str

    def at(self, day: date) -> PolicyVersion:
        chosen = None
        for version in self.versions:
            if version.effective_from <= day:
                chosen = version
        if chosen is None:
            raise PolicyError(f"no policy version in force on {day} (first: {self.versions[0].effective_from})")
        return chosen


def disbursement_term_changes(policy: "Policy") -> list[TermChange]:
    """Every version that changes a term fixed at disbursement, in date order (ADR 0015)."""
    changes: list[TermChange] = []
    for previous, version in zip(policy.versions, policy.versions[1:]):
        for term, (section, key, rule) in DISBURSEMENT_TERMS.items():
            before, after = getattr(getattr(previous, section), key), getattr(getattr(version, section), key)
            if before != after:
                changes.append(TermChange(version.effective_from, term, f"{section}.{key}", before, after, rule))
    return changes


def _deep_merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _find_floats(node: Any, path: str) -> None:
    if isinstance(node, float):
        raise PolicyError(f"{path}: floats are refused; write the number as a string [MNY-1]")
    if isinstance(node, dict):
        for key, value in node.items():
            _find_floats(value, f"{path}.{key}" if path else key)
    if isinstance(node, list):
        for index, value in enumerate(node):
            _find_floats(value, f"{path}[{index}]")


def _check_texts(node: Any, path: str) -> None:
    """Every text in a policy is short (names, codes, kinds): a longer one is a mistake, refused by key."""
    if isinstance(node, str) and len(node) > POLICY_TEXT_CHARS_MAX:
        raise PolicyError(f"{path}: longer than POLICY_TEXT_CHARS_MAX = {POLICY_TEXT_CHARS_MAX} characters")
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in children:
        _check_texts(value, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key))


def parse_policy(data: dict[str, Any], source: str = "<memory>") -> Policy:
    _find_floats(data, "")
    _check_texts(data, "")
    for key in ("centre_name", "centre_code", "city", "versions"):
        if key not in data:
            raise PolicyError(f"{key}: required key missing")
    unknown = set(data) - {"centre_name", "centre_code", "city", "versions"}
    if unknown:
        raise PolicyError(f"{sorted(unknown)[0]}: unknown key")
    versions: list[PolicyVersion] = []
    merged: dict[str, Any] = {}
    for index, raw in enumerate(data["versions"]):
        merged = _deep_merge(merged, raw)
        try:
            versions.append(PolicyVersion.model_validate(merged))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise PolicyError(f"versions[{index}].{where}: {error['msg']}") from None
    dates = [v.effective_from for v in versions]
    if dates != sorted(dates) or len(set(dates)) != len(dates):
        raise PolicyError("versions: effective_from dates must be strictly increasing")
    return Policy(data["centre_name"], data["centre_code"], data["city"], tuple(versions), source)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file; the shipped sample city by default."""
    if path is None:
        text = resources.files("ledger.policies").joinpath(DEFAULT_POLICY).read_text("utf-8")
        source = f"ledger/policies/{DEFAULT_POLICY}"
    else:
        text = _policy_text(Path(path))
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    return parse_policy(data, source)


def _policy_text(path: Path) -> str:
    """A policy file's text: readable, at most POLICY_FILE_BYTES_MAX, UTF-8 (refused with the line otherwise)."""
    try:
        size = path.stat().st_size
        if size > POLICY_FILE_BYTES_MAX:
            raise PolicyError(f"{path}: {size} bytes is larger than POLICY_FILE_BYTES_MAX = {POLICY_FILE_BYTES_MAX}")
        data = path.read_bytes()
    except OSError as error:
        raise PolicyError(f"{path}: cannot be read: {error.strerror or error}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise PolicyError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[error.start]:02x})") from None
