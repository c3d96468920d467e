"""The one money type of the ledger (MNY-1) and its one rounding function.

Amounts are yuan with two decimal places (fen) over :class:`decimal.Decimal`.
Every input passes through :func:`Money.parse`, which refuses floats, NaN,
infinities and more than two decimals with an error naming the field. Every
rounding in the code base goes through :func:`round_fen` (ROUND_HALF_UP,
四舍五入); rates are percent strings (MNY-3) parsed by :func:`parse_rate`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable

FEN = Decimal("0.01")
YUAN = Decimal("1")
HUNDRED = Decimal("100")
RATE_PLACES_MAX = 6


class MoneyError(ValueError):
    """An amount or rate broke MNY-1 or MNY-3; the message names the field and the rule."""

    def __init__(self, field: str, rule: str, value: Any = None):
        self.field = field
        self.rule = rule
        self.value = value
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{field}: {rule}{shown}")


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
        object.__setattr__(self, "amount", number.quantize(FEN))

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

        MNY-1: 0–2 decimals as written, so ``5.000`` is refused like ``5.001``
        (the constructor, for computed values, only refuses a lost fen).
        """
        exponent = _to_decimal(value, field).as_tuple().exponent
        if isinstance(exponent, int) and exponent < -2:
            raise MoneyError(field, "MNY-1 at most 2 decimal places", value)
        money = cls(value, field)
        if money.amount < 0 and not allow_negative:
            raise MoneyError(field, "MNY-1 a negative amount is refused here", value)
        if positive and money.amount == 0:
            raise MoneyError(field, "MNY-1 zero is refused where money moves", value)
        return money

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
        """Internal fast path for integer arithmetic in fen (loan schedules): exact, two places."""
        money = _new(cls)
        _set_amount(money, Decimal(fen).scaleb(-2))
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


def parse_rate(value: Any, field: str = "annual_rate", *, maximum: Decimal | None = None) -> Decimal:
    """A percent rate as a Decimal (``"2.85"`` means 2.85 %), MNY-3.

    Floats are refused like money; zero and negatives are refused; ``maximum``
    (in percent) bounds it (LN-1 accepts 0 < r <= 10).
    """
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
