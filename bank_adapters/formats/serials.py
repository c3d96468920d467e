"""Serial numbers (业务流水号) and bank card numbers.

A serial is the centre's 15-character id of one business (BNK-2): the business date as YYYYMMDD and a
7-digit daily sequence from 0000001, e.g. ``202502150000001``. Outgoing lines carry it in 摘要;
statement lines echo it in 备注 (BNK-4), so :func:`find_serial` picks it out of free text.

Card numbers are checked with the Luhn check digit (``stdnum.luhn``) by :func:`validate_card`. Parsing a
bank file never rejects a card that fails Luhn: that is a business check left to the caller (BNK-3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from stdnum import luhn
from stdnum.exceptions import ValidationError

SERIAL_LENGTH = 15
SERIAL_SEQUENCE_MIN = 1
SERIAL_SEQUENCE_MAX = 9_999_999
SERIAL_IN_TEXT_PATTERN = re.compile(r"(?<![0-9])[0-9]{15}(?![0-9])")
CARD_DIGITS_MIN = 13
CARD_DIGITS_MAX = 19


class SerialNumberError(ValueError):
    """BNK-2: a serial is YYYYMMDD + a 7-digit daily sequence from 0000001."""


class AmbiguousSerialError(SerialNumberError):
    """BNK-4: a memo names more than one serial, so it cannot say which business it pays."""


class CardNumberError(ValueError):
    """A bank card number is 13-19 digits and passes the Luhn check digit."""


@dataclass(frozen=True, order=True)
class Serial:
    """A parsed serial: its business date and daily sequence."""

    issued_on: date
    sequence: int

    def __str__(self) -> str:
        return format_serial(self.issued_on, self.sequence)


def format_serial(day: date, sequence: int) -> str:
    """202502150000001 from (2025-02-15, 1)."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise SerialNumberError(f"BNK-2 the serial's day must be a date, got {day!r}")
    if not isinstance(sequence, int) or isinstance(sequence, bool):
        raise SerialNumberError(f"BNK-2 the daily sequence must be an int, got {sequence!r}")
    if not SERIAL_SEQUENCE_MIN <= sequence <= SERIAL_SEQUENCE_MAX:
        raise SerialNumberError(
            f"BNK-2 the daily sequence must be {SERIAL_SEQUENCE_MIN}..{SERIAL_SEQUENCE_MAX}, got {sequence}"
        )
    return f"{day.year:04d}{day.month:02d}{day.day:02d}{sequence:07d}"


def parse_serial(text: str) -> Serial:
    """The day and sequence of a 15-character serial; anything else is refused."""
    if not (isinstance(text, str) and len(text) == SERIAL_LENGTH and text.isascii() and text.isdigit()):
        raise SerialNumberError(f"BNK-2 a serial is {SERIAL_LENGTH} digits, got {text!r}")
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise SerialNumberError(f"BNK-2 the serial's first 8 digits are not a date YYYYMMDD: {text!r}") from None
    sequence = int(text[8:])
    if sequence < SERIAL_SEQUENCE_MIN:
        raise SerialNumberError(f"BNK-2 the daily sequence starts at 0000001: {text!r}")
    return Serial(day, sequence)


def is_serial(text: str) -> bool:
    try:
        parse_serial(text)
    except SerialNumberError:
        return False
    return True


def find_serials(text: str) -> tuple[str, ...]:
    """Every distinct valid serial standing alone (not inside a longer run of digits) in a memo, in order."""
    found: list[str] = []
    for match in SERIAL_IN_TEXT_PATTERN.finditer(text):
        candidate = match.group()
        if is_serial(candidate) and candidate not in found:
            found.append(candidate)
    return tuple(found)


def find_serial(text: str) -> str | None:
    """The one serial in a 摘要/备注 text, None if there is none; two different serials are ambiguous."""
    found = find_serials(text)
    if len(found) > 1:
        raise AmbiguousSerialError(f"BNK-4 the memo names {len(found)} serials: {', '.join(found)}")
    return found[0] if found else None


def validate_card(number: str) -> str:
    """The card number if it is 13-19 digits with a correct Luhn check digit; else CardNumberError."""
    if not isinstance(number, str) or not (number.isascii() and number.isdigit()):
        raise CardNumberError(f"a card number is digits only, got {number!r}")
    if not CARD_DIGITS_MIN <= len(number) <= CARD_DIGITS_MAX:
        raise CardNumberError(f"a card number has {CARD_DIGITS_MIN}-{CARD_DIGITS_MAX} digits, got {len(number)}")
    try:
        luhn.validate(number)
    except ValidationError:
        raise CardNumberError(f"the card number fails its Luhn check digit (校验位错误): {number}") from None
    return number


def is_valid_card(number: str) -> bool:
    try:
        validate_card(number)
    except CardNumberError:
        return False
    return True
