"""Text fields entered at the entry points (names, references, document numbers, evidence): one checker.

Every text a person or a bank gives — a member's name, a bank reference (主机流水号), a document number,
an idempotency key, an evidence value, a reason — ends up in events and then in the read model's
``String`` columns, compared and printed for decades. So it is checked before anything is written
(rule TXT-1, ADR 0016): at most as long as its column (:data:`CODE_CHARS_MAX` for codes, keys and
references, :data:`NAME_CHARS_MAX` for names and free text: ``ledger.projections.tables`` sizes its
columns with these), no control characters (NUL included: PostgreSQL text cannot hold it), no format
characters (bidi overrides U+202A–U+202E and isolates U+2066–U+2069, zero-width and BOM), no
surrogates or line/paragraph separators, and never blank when required. Text is returned unchanged:
what is accepted is stored as given.
"""

from __future__ import annotations

import unicodedata

from ledger.rules import LedgerRuleError

CODE_CHARS_MAX = 64  # codes, numbers, keys, references: read-side String(64) columns; composed ids fit 200
NAME_CHARS_MAX = 200  # names, reasons, evidence values: read-side String(200) columns
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format character (bidi override, zero-width, BOM)",
    "Cs": "a surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


class TextFieldError(LedgerRuleError):
    """A text field too long, blank, or holding a character the ledger does not store (TXT-1)."""

    rule = "TXT-1"


def check_text(value: object, field: str, *, chars_max: int = NAME_CHARS_MAX, required: bool = True) -> str:
    """``value`` unchanged if it is text of at most ``chars_max`` characters with none refused, and not
    blank when ``required`` (an optional field may be empty, never whitespace only)."""
    if not isinstance(value, str):
        raise TextFieldError(f"text is required, not {type(value).__name__}", field=field)
    if len(value) > chars_max:
        raise TextFieldError(f"at most {chars_max} characters (got {len(value)})", field=field)
    for char in value:
        category = unicodedata.category(char)
        if category in REFUSED_CATEGORIES:
            raise TextFieldError(f"{REFUSED_CATEGORIES[category]} U+{ord(char):04X} is refused", field=field)
    if value and not value.strip():
        raise TextFieldError("blank (whitespace only) is refused", field=field)
    if required and not value:
        raise TextFieldError("a value is required", field=field)
    return value


def check_code(value: object, field: str, *, required: bool = True) -> str:
    """A code, number, key or reference (credit code, account number, bank reference, document number)."""
    return check_text(value, field, chars_max=CODE_CHARS_MAX, required=required)


def check_name(value: object, field: str, *, required: bool = True) -> str:
    """A name or free text (member name, payee, reason, evidence value)."""
    return check_text(value, field, chars_max=NAME_CHARS_MAX, required=required)
