"""The one money type of the ledger (MNY-1) and its one rounding function.

Amounts are yuan with two decimal places (fen) over :class:`decimal.Decimal`.
Every amount written as text — a CLI option, an HTTP body, a policy file, a CSV or bank-file field —
is read by the one parser :func:`parse_amount` (``Money.parse`` hands text to it): a decimal string with
at most two places and nothing else. Exponents, separators, underscores, whitespace inside, a sign
where the field is unsigned, NaN/Infinity, more than two places, an empty text and anything above
:data:`AMOUNT_MAX` (what the read model's int64 fen columns hold with room for sums) are refused
with an error naming the field and the rule. Every rounding in the code base goes through
:func:`round_fen` (ROUND_HALF_UP, 四舍五入); rates are percent strings (MNY-3) parsed by
:func:`parse_rate` with the same grammar.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable

FEN = Decimal("0.01")
YUAN = Decimal("1")
HUNDRED = Decimal("100")
RATE_PLACES_MAX = 6
RATE_INTEGER_DIGITS_MAX = 4
AMOUNT_PLACES_MAX = 2
AMOUNT_INTEGER_DIGITS_MAX = 13  # 9,999,999,999,999.99: 10^15 fen, so int64 fen columns hold 9,000 such sums
AMOUNT_CHARS_MAX = 32  # longer text is refused before it is read (a 128 KiB "amount" is not parsed)
SHOWN_CHARS_MAX = 40  # how much of a refused value an error message repeats
SURROUNDING_BLANKS = " \t"
_NUMBER_TEXT = re.compile(r"(?P<sign>[+-]?)(?P<whole>[0-9]+)(?:\.(?P<places>[0-9]+))?", re.ASCII)
_SEPARATORS = frozenset(",，'’·٬")


FROM_FEN_MEMO_MAX = 100_000
_FROM_FEN: dict[int, "Money"] = {}


class MoneyError(ValueError):
    """An amount or rate broke MNY-1 or MNY-3. ``rule`` is the rule id followed by the reason (kept whole
    for callers that read it), ``rule_id`` the id alone; ``str()`` is ``field: reason (got …) [RULE]``."""

    def __init__(self, field: str, rule: str, value: Any = None):
        self.field = field
        self.rule = rule
        self.value = value
        self.rule_id, _, reason = rule.partition(" ")
        self.message = reason or rule
        super().__init__(f"{field}: {self.message}{_shown(value)} [{self.rule_id}]")


def _shown(value: Any) -> str:
    if value is None:
        return ""
    text = repr(value)
    if len(text) > SHOWN_CHARS_MAX:
        text = text[:SHOWN_CHARS_MAX] + "…"
    return f" (got {text})"


_EXPONENT_TEXT = re.compile(r"[+-]?[0-9.]+e[+-]?[0-9]+", re.ASCII)


def _why_not_a_number(text: str, places_max: int) -> str:
    """Why ``text`` is not a plain decimal string: the reason an error gives (MNY-1)."""
    lowered = text.lower()
    if "nan" in lowered or "inf" in lowered:
        return "NaN and infinity are refused"
    if any(char in _SEPARATORS for char in text):
        return "separators are refused; write 1500.00, not 1,500.00"
    if "_" in text:
        return "underscores are refused; write 1000, not 1_000"
    if any(char.isspace() for char in text):
        return "whitespace inside an amount is refused"
    if _EXPONENT_TEXT.fullmatch(lowered):
        return f"exponents are refused; write digits with at most {places_max} decimal places (1000, not 1e3)"
    return "not a decimal number"


def _decimal_text(value: str, field: str, rule: str, *, signed: bool, places_max: int,
                  whole_digits_max: int, chars_max: int) -> Decimal:
    """The one grammar of numbers written as text: optional sign, ASCII digits, optional point and digits."""
    if len(value) > chars_max:
        raise MoneyError(field, f"{rule} longer than {chars_max} characters", value)
    text = value.strip(SURROUNDING_BLANKS)
    if not text:
        raise MoneyError(field, f"{rule} an amount is required" if rule == "MNY-1" else f"{rule} a value is required",
                         value)
    match = _NUMBER_TEXT.fullmatch(text)
    if match is None:
        raise MoneyError(field, f"{rule} {_why_not_a_number(text, places_max)}", value)
    if match["sign"] == "-" and not signed:
        raise MoneyError(field, f"{rule} a negative amount is refused here", value)
    if match["sign"] and not signed:
        raise MoneyError(field, f"{rule} a sign is refused here", value)
    if match["places"] is not None and len(match["places"]) > places_max:
        raise MoneyError(field, f"{rule} at most {places_max} decimal places", value)
    if len(match["whole"].lstrip("0")) > whole_digits_max:
        raise MoneyError(field, f"{rule} at most {whole_digits_max} digits before the point", value)
    return Decimal(text)


def round_fen(value: Decimal) -> Decimal:
    """Round to the fen, half up: the only rounding of money in the ledger."""
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


def round_yuan(value: Decimal) -> Decimal:
    """Round to the whole yuan, half up (CON-1 policy for some centres)."""
    return value.quantize(YUAN, rounding=ROUND_HALF_UP).quantize(FEN)


def _to_decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError(field, "MNY-1 floats are refused; give a string or Decimal", value)
    if isinstance(value, Money):
        return value.amount
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "")
        if not text:
            raise MoneyError(field, "MNY-1 an amount is required", value)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise MoneyError(field, "MNY-1 not a decimal number", value) from None
    else:
        raise MoneyError(field, f"MNY-1 unsupported type {type(value).__name__}", value)
    if not number.is_finite():
        raise MoneyError(field, "MNY-1 NaN and infinity are refused", value)
    return number


class Money:
    """An amount of yuan, exactly two decimals. Immutable and hashable."""

    __slots__ = ("amount",)
    amount: Decimal

    def __init__(self, amount: Decimal | int | str = 0, field: str = "amount"):
        number = _to_decimal(amount, field)
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -2 and number != number.quantize(FEN):
            raise MoneyError(field, "MNY-1 at most 2 decimal places", amount)
        try:
            object.__setattr__(self, "amount", number.quantize(FEN))
        except InvalidOperation:  # more digits than the decimal context holds
            raise MoneyError(field, "MNY-1 too large an amount", amount) from None

    # -- construction ---------------------------------------------------
    @classmethod
    def parse(
        cls,
        value: Any,
        field: str = "amount",
        *,
        positive: bool = False,
        allow_negative: bool = False,
    ) -> "Money":
        """Parse an input amount; ``positive`` for commands that move money.

        Text goes to :func:`parse_amount`, the one parser; a Decimal or an int (from code, never a float)
        obeys the same rules: 0–2 decimals as written, so ``5.000`` is refused like ``5.001`` (the
        constructor, for computed values, only refuses a lost fen), and at most :data:`AMOUNT_MAX`.
        """
        if isinstance(value, str):
            return parse_amount(value, field, signed=allow_negative, positive=positive)
        number = _to_decimal(value, field)
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -2:
            raise MoneyError(field, "MNY-1 at most 2 decimal places", value)
        if abs(number) > AMOUNT_MAX.amount:
            raise MoneyError(field, f"MNY-1 above the largest amount {AMOUNT_MAX}", value)
        money = cls(value, field)
        return _checked(money, field, value, signed=allow_negative, positive=positive)

    @classmethod
    def of(cls, value: Decimal) -> "Money":
        """Wrap a computed Decimal, rounding it to the fen (half up)."""
        if isinstance(value, float):
            raise MoneyError("amount", "MNY-1 floats are refused", value)
        return cls._exact(round_fen(Decimal(value)))

    @classmethod
    def _exact(cls, amount: Decimal) -> "Money":
        """Internal fast path: ``amount`` is already a Decimal with exactly two places (a sum or
        difference of Money, or the result of round_fen); no parsing, no rounding."""
        money = _new(cls)
        _set_amount(money, amount)
        return money

    @classmethod
    def stored(cls, text: str) -> "Money":
        """Money as the ledger itself wrote it (``str(money)``: two places); anything else takes the
        checked path of the constructor."""
        try:
            amount = Decimal(text)
        except (InvalidOperation, TypeError):
            return cls(text)
        if amount.as_tuple().exponent != -2 or not amount.is_finite():
            return cls(text)
        money = _new(cls)
        _set_amount(money, amount)
        return money

    @classmethod
    def from_fen(cls, fen: int) -> "Money":
        """Internal fast path for integer arithmetic in fen (loan schedules, snapshots): exact, two places.
        Money is immutable, so the values a load sees again and again (a monthly instalment, a share) are
        shared from a bounded memo."""
        found = _FROM_FEN.get(fen)
        if found is not None and cls is Money:
            return found
        money = _new(cls)
        _set_amount(money, Decimal(fen).scaleb(-2))
        if cls is Money:
            if len(_FROM_FEN) >= FROM_FEN_MEMO_MAX:
                _FROM_FEN.clear()
            _FROM_FEN[fen] = money
        return money

    @classmethod
    def zero(cls) -> "Money":
        return ZERO

    @classmethod
    def sum(cls, values: Iterable["Money"]) -> "Money":
        total = FEN - FEN  # Decimal("0.00"): keeps two places
        for value in values:
            total += value.amount
        return cls._exact(total)

    # -- arithmetic -----------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Money is immutable")

    def __add__(self, other: "Money") -> "Money":
        if not isinstance(other, Money):
            return NotImplemented
        return Money._exact(self.amount + other.amount)

    def __radd__(self, other: Any) -> "Money":
        if other == 0 and not isinstance(other, float):  # lets sum() start from 0
            return self
        return NotImplemented

    def __sub__(self, other: "Money") -> "Money":
        if not isinstance(other, Money):
            return NotImplemented
        return Money._exact(self.amount - other.amount)

    def __neg__(self) -> "Money":
        return Money._exact(-self.amount)

    def __abs__(self) -> "Money":
        return Money._exact(abs(self.amount))

    def times(self, factor: Decimal) -> "Money":
        """Multiply by an exact Decimal factor and round to the fen."""
        if isinstance(factor, float):
            raise MoneyError("factor", "MNY-1 floats are refused", factor)
        return Money._exact(round_fen(self.amount * factor))

    def min(self, other: "Money") -> "Money":
        return self if self <= other else other

    def max(self, other: "Money") -> "Money":
        return self if self >= other else other

    # -- comparison -----------------------------------------------------
    def _cmp(self, other: Any) -> Decimal:
        if isinstance(other, Money):
            return other.amount
        raise TypeError(f"cannot compare Money with {type(other).__name__}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and self.amount == other.amount

    def __hash__(self) -> int:
        return hash(("Money", self.amount))

    def __lt__(self, other: "Money") -> bool:
        return self.amount < self._cmp(other)

    def __le__(self, other: "Money") -> bool:
        return self.amount <= self._cmp(other)

    def __gt__(self, other: "Money") -> bool:
        return self.amount > self._cmp(other)

    def __ge__(self, other: "Money") -> bool:
        return self.amount >= self._cmp(other)

    def __bool__(self) -> bool:
        return self.amount != 0

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    # -- presentation ---------------------------------------------------
    def __str__(self) -> str:
        return f"{self.amount:.2f}"

    def __repr__(self) -> str:
        return f"Money('{self.amount:.2f}')"

    def formatted(self) -> str:
        """Thousands separators for people: 2,067.79."""
        return f"{self.amount:,.2f}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Money, (str(self),))

    def __copy__(self) -> "Money":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "Money":
        return self


_new = object.__new__
_set_amount = Money.__dict__["amount"].__set__  # the slot itself: Money.__setattr__ refuses every write

ZERO = Money(0)
AMOUNT_MAX = Money("9999999999999.99")  # AMOUNT_INTEGER_DIGITS_MAX nines and 99 fen


def _checked(money: Money, field: str, value: Any, *, signed: bool, positive: bool) -> Money:
    if money.amount < 0 and not signed:
        raise MoneyError(field, "MNY-1 a negative amount is refused here", value)
    if positive and money.amount == 0:
        raise MoneyError(field, "MNY-1 zero is refused where money moves", value)
    if abs(money) > AMOUNT_MAX:
        raise MoneyError(field, f"MNY-1 above the largest amount {AMOUNT_MAX}", value)
    return money


def parse_amount(text: str, field: str = "amount", *, signed: bool = False, positive: bool = False) -> Money:
    """MNY-1, the one reader of amounts written as text (CLI options, HTTP bodies, policy, CSV, bank files).

    Accepted: optional surrounding spaces, then digits with an optional point and 1–2 decimals
    (``5``, ``5.0``, ``5.00``); a leading ``-`` or ``+`` only when ``signed``; zero refused when
    ``positive`` (money moves); at most :data:`AMOUNT_MAX`. Everything else — ``1e3``, ``1,5``,
    ``1_000``, ``1 000``, ``NaN``, ``Infinity``, ``5.001``, ``""``, a non-text value — raises
    :class:`MoneyError` naming ``field`` and the rule. What it accepts equals ``Decimal(text)``.
    """
    if not isinstance(text, str):
        kind = "floats are refused; give a string or Decimal" if isinstance(text, float) else "an amount is text"
        raise MoneyError(field, f"MNY-1 {kind}", text)
    number = _decimal_text(text, field, "MNY-1", signed=signed, places_max=AMOUNT_PLACES_MAX,
                           whole_digits_max=AMOUNT_INTEGER_DIGITS_MAX, chars_max=AMOUNT_CHARS_MAX)
    amount = number.quantize(FEN) if number else FEN - FEN  # "-0" is 0.00, never "-0.00"
    return _checked(Money._exact(amount), field, text, signed=signed, positive=positive)


def parse_rate(value: Any, field: str = "annual_rate", *, maximum: Decimal | None = None) -> Decimal:
    """A percent rate as a Decimal (``"2.85"`` means 2.85 %), MNY-3.

    Text follows the amounts' grammar (no exponent, separator, underscore or inner whitespace) with
    up to :data:`RATE_PLACES_MAX` places; floats are refused like money; zero and negatives are
    refused; ``maximum`` (in percent) bounds it (LN-1 accepts 0 < r <= 10).
    """
    if isinstance(value, str):
        number = _decimal_text(value, field, "MNY-3", signed=True, places_max=RATE_PLACES_MAX,
                               whole_digits_max=RATE_INTEGER_DIGITS_MAX, chars_max=AMOUNT_CHARS_MAX)
    else:
        number = _to_decimal(value, field)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > RATE_PLACES_MAX:
        raise MoneyError(field, f"MNY-3 at most {RATE_PLACES_MAX} decimal places in a rate", value)
    if number <= 0:
        raise MoneyError(field, "MNY-3 a rate must be above zero", value)
    if maximum is not None and number > maximum:
        raise MoneyError(field, f"MNY-3 a rate must be at most {maximum} %", value)
    return number


def percent(rate: Decimal) -> Decimal:
    """2.85 -> 0.0285, exactly."""
    return rate / HUNDRED
