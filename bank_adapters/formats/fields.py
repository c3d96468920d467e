"""Columns of the bank files: each field's English name, its Chinese label and the codec for its text.

A codec turns the text of one field into a value (``Money``, ``date``, ``int``, ``bool``, ``str``) and
back, refusing text that breaks the format with a :class:`FieldRuleError` naming the rule. A
:class:`RecordKind` is one line layout (its columns in file order) and the frozen dataclass it builds.

Byte-for-byte round trips: a value's canonical text (``5.00``, ``1``) may differ from what a bank wrote
(``5``, ``01``). Such original texts are kept in each record's ``raw_texts`` (field name -> text,
``compare=False``: they are formatting memory, not meaning) and written back as long as they still parse
to the record's value; a changed value is written in canonical form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum
from typing import Any, Callable, NamedTuple, Protocol, Sequence, cast

from ledger.money import Money, MoneyError

from .problems import FIELD_CHARS_MAX, Problems

RawTexts = tuple[tuple[str, str], ...]

AMOUNT_INTEGER_DIGITS_MAX = 13
INTEGER_DIGITS_MAX = 9
AMOUNT_PATTERN = re.compile(r"-?[0-9]{1,%d}(?:\.[0-9]{1,2})?" % AMOUNT_INTEGER_DIGITS_MAX)
DATE_PATTERN = re.compile(r"[0-9]{8}")
INTEGER_PATTERN = re.compile(r"[0-9]{1,%d}" % INTEGER_DIGITS_MAX)
LINE_BREAKS = ("\n", "\r")


class FieldRuleError(ValueError):
    """The text or value of one field breaks a format rule."""

    def __init__(self, rule: str):
        self.rule = rule
        super().__init__(rule)


class Codec(Protocol):
    def parse(self, text: str) -> Any: ...

    def format(self, value: Any) -> str: ...


@dataclass(frozen=True)
class TextCodec:
    """Free text; ``required`` refuses the empty string."""

    required: bool = False

    def parse(self, text: str) -> str:
        if self.required and not text:
            raise FieldRuleError("BNK-3 required: may not be empty")
        return text

    def format(self, value: Any) -> str:
        if not isinstance(value, str):
            raise FieldRuleError(f"must be text, not {type(value).__name__}")
        return self.parse(value)


@dataclass(frozen=True)
class DigitsCodec:
    """A code of exactly ``length_digits`` digits (联行号: 12)."""

    length_digits: int

    def parse(self, text: str) -> str:
        if not (len(text) == self.length_digits and text.isascii() and text.isdigit()):
            raise FieldRuleError(f"BNK-3 must be exactly {self.length_digits} digits")
        return text

    def format(self, value: Any) -> str:
        if not isinstance(value, str):
            raise FieldRuleError(f"must be text, not {type(value).__name__}")
        return self.parse(value)


@dataclass(frozen=True)
class AmountCodec:
    """Yuan with 0-2 decimals (MNY-1); ``signed`` lets money leaving be negative; ``optional`` allows empty."""

    signed: bool = False
    positive: bool = False
    optional: bool = False

    def parse(self, text: str) -> Money | None:
        if not text and self.optional:
            return None
        if not AMOUNT_PATTERN.fullmatch(text):
            raise FieldRuleError("MNY-1 not an amount: yuan as digits with at most 2 decimals")
        if text.startswith("-") and not self.signed:
            raise FieldRuleError("MNY-1 a negative amount is refused here")
        try:
            return Money.parse(text, allow_negative=self.signed, positive=self.positive)
        except MoneyError as error:
            raise FieldRuleError(error.rule) from None

    def format(self, value: Any) -> str:
        if value is None and self.optional:
            return ""
        if not isinstance(value, Money):
            raise FieldRuleError(f"MNY-1 must be Money, not {type(value).__name__}")
        return str(value)


@dataclass(frozen=True)
class DateCodec:
    """A date as YYYYMMDD."""

    optional: bool = False

    def parse(self, text: str) -> date | None:
        if not text and self.optional:
            return None
        if not (DATE_PATTERN.fullmatch(text) and text.isascii()):
            raise FieldRuleError("BNK-3 not a date YYYYMMDD")
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            raise FieldRuleError("BNK-3 not a valid calendar date YYYYMMDD") from None

    def format(self, value: Any) -> str:
        if value is None and self.optional:
            return ""
        if not isinstance(value, date) or isinstance(value, datetime):
            raise FieldRuleError(f"must be a date, not {type(value).__name__}")
        return f"{value.year:04d}{value.month:02d}{value.day:02d}"


@dataclass(frozen=True)
class IntegerCodec:
    """A count or line number: digits, at least ``minimum``."""

    minimum: int = 0

    def parse(self, text: str) -> int:
        if not (INTEGER_PATTERN.fullmatch(text) and text.isascii()):
            raise FieldRuleError(f"BNK-3 must be a whole number of 1 to {INTEGER_DIGITS_MAX} digits")
        number = int(text)
        if number < self.minimum:
            raise FieldRuleError(f"BNK-3 must be at least {self.minimum}")
        return number

    def format(self, value: Any) -> str:
        if not isinstance(value, int) or isinstance(value, bool):
            raise FieldRuleError(f"must be an int, not {type(value).__name__}")
        return str(value)


@dataclass(frozen=True)
class FlagCodec:
    """A yes/no field written as ``true_text`` / ``false_text`` (other accepted false texts in ``false_texts``)."""

    true_text: str
    false_text: str
    false_texts: tuple[str, ...] = ()

    def parse(self, text: str) -> bool:
        if text == self.true_text:
            return True
        if text == self.false_text or text in self.false_texts:
            return False
        allowed = ", ".join(repr(t) for t in (self.true_text, self.false_text, *self.false_texts))
        raise FieldRuleError(f"BNK-3 must be one of {allowed}")

    def format(self, value: Any) -> str:
        if not isinstance(value, bool):
            raise FieldRuleError(f"must be a bool, not {type(value).__name__}")
        return self.true_text if value else self.false_text


@dataclass(frozen=True)
class ChoiceCodec:
    """One value of an IntEnum written as its number."""

    choices: type[IntEnum]

    def parse(self, text: str) -> IntEnum:
        for choice in self.choices:
            if text == str(int(choice)):
                return choice
        allowed = ", ".join(str(int(choice)) for choice in self.choices)
        raise FieldRuleError(f"BNK-3 must be one of {allowed}")

    def format(self, value: Any) -> str:
        if isinstance(value, bool) or value not in set(self.choices):
            raise FieldRuleError(f"must be one of {[int(choice) for choice in self.choices]}")
        return str(int(value))


@dataclass(frozen=True)
class Column:
    """One field of a line: English name (dataclass attribute, CSV header), Chinese label, codec."""

    name: str
    label: str
    codec: Codec


@dataclass(frozen=True)
class RecordKind:
    """One line layout and the record it builds.

    ``tag`` is a constant first field (the BDC105 header's ``H``); ``prefix`` is text glued before the
    first field (the BDC108 summary's ``$``). Neither is part of the record.
    """

    name: str
    record_class: type
    columns: tuple[Column, ...]
    tag: str = ""
    prefix: str = ""

    @property
    def field_count(self) -> int:
        return len(self.columns) + (1 if self.tag else 0)

    def field_name(self, index: int) -> tuple[str, str]:
        """(name, label) of the index-th field as it stands on the line."""
        if self.tag:
            if index == 0:
                return "record_tag", ""
            index -= 1
        if 0 <= index < len(self.columns):
            return self.columns[index].name, self.columns[index].label
        return f"field {index + 1}", ""


@dataclass(frozen=True)
class TextLayout:
    """How a file's lines were laid out, kept so a parsed file is written back byte for byte.

    ``header_line`` (BDC105 only): whether the batch header is a line of the file; in the files banks
    exchange it is not (it travels with the batch request, see ``bank_adapters.formats.debit``).
    """

    newline: str = "\n"
    final_newline: bool = False
    end_marker: bool = False
    bom: bool = False
    header_line: bool = True


class Entry(NamedTuple):
    """A parsed record and the line it came from."""

    line_number: int
    kind: RecordKind
    record: Any


@dataclass(frozen=True)
class FileFormat:
    """One file type: its record kinds, how to tell them apart on a national line, and its whole-file rules.

    ``assemble`` builds the file object from entries, checking order, sequences and totals; it is run
    on reading and again before writing, so one function holds each whole-file rule.
    """

    name: str
    kinds: tuple[RecordKind, ...]
    separator: str
    kind_for: Callable[[int, int], RecordKind | None]
    field_counts_text: str
    assemble: Callable[[Sequence[Entry], TextLayout, Problems], Any]
    records_of: Callable[[Any], list[tuple[RecordKind, Any]]]
    end_marker: str = ""


def parse_record(kind: RecordKind, texts: Sequence[str], line_number: int, problems: Problems) -> Any:
    """Build one record from its field texts (tag and prefix already removed); None if a field is bad."""
    assert len(texts) == len(kind.columns)
    values: dict[str, Any] = {}
    raw_texts: list[tuple[str, str]] = []
    for column, text in zip(kind.columns, texts, strict=True):
        if len(text) > FIELD_CHARS_MAX:
            rule = f"BNK-3 longer than FIELD_CHARS_MAX = {FIELD_CHARS_MAX} characters"
            problems.add(line_number, column.name, rule, text, column.label)
            continue
        try:
            value = column.codec.parse(text)
        except FieldRuleError as error:
            problems.add(line_number, column.name, error.rule, text, column.label)
            continue
        values[column.name] = value
        if column.codec.format(value) != text:
            raw_texts.append((column.name, text))
    if len(values) != len(kind.columns):
        return None
    return kind.record_class(**values, raw_texts=tuple(raw_texts))


def render_record(kind: RecordKind, record: Any, line_number: int, problems: Problems) -> list[str] | None:
    """The field texts of one record (without tag or prefix); None if a value breaks its field's rule."""
    if not isinstance(record, kind.record_class):
        problems.add(line_number, "record", f"must be a {kind.record_class.__name__}", type(record).__name__)
        return None
    raw = dict(cast(Any, record).raw_texts)
    texts: list[str] = []
    for column in kind.columns:
        value = getattr(record, column.name)
        try:
            texts.append(_field_text(column.codec, value, raw.get(column.name)))
        except FieldRuleError as error:
            problems.add(line_number, column.name, error.rule, str(value), column.label)
    if len(texts) != len(kind.columns):
        return None
    joined = "".join(texts)
    if any(mark in joined for mark in LINE_BREAKS):
        for column, text in zip(kind.columns, texts, strict=True):
            if any(mark in text for mark in LINE_BREAKS):
                problems.add(line_number, column.name, "BNK-3 a field may not hold a line break", text, column.label)
    return texts


def _field_text(codec: Codec, value: Any, raw_text: str | None) -> str:
    """The original text if it still means ``value``, else the canonical text (checked by parsing it back)."""
    if raw_text is not None and _parses_to(codec, raw_text, value):
        return raw_text
    text = codec.format(value)
    if not _parses_to(codec, text, value):
        codec.parse(text)  # raises the rule the value breaks
        raise FieldRuleError("value does not survive its text form")
    return text


def _parses_to(codec: Codec, text: str, value: Any) -> bool:
    try:
        parsed = codec.parse(text)
    except FieldRuleError:
        return False
    return type(parsed) is type(value) and parsed == value
