"""What the ``gjj`` commands read from their options before they call the ledger (issue 16).

Every option is text until checked here or by the one parser it names: amounts by
``ledger.money.parse_amount`` (inside the use cases), dates by ``ledger.dates``, codes and names by
``ledger.text`` (TXT-1), counts by :func:`count`. ``--on DATE`` is the value date (业务日期) of the
business a command records: today when omitted, and refused by ``LedgerBase.check_value_date``
(MNY-4: never after today, at most k ⚙ days before it); the recorded time stays the wall clock.
A refusal raises a named error that ``ledger.cli`` prints as ``field: message [RULE]`` and exits 2.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Optional

from ledger.aggregates.errors import ValueDateError
from ledger.dates import parse_date
from ledger.rules import LedgerRuleError
from ledger.text import CODE_CHARS_MAX, check_code, check_name

EVIDENCE_FIELDS_MAX = 32
COUNT_DIGITS_MAX = 9
_COUNT_TEXT = re.compile(r"[0-9]{1,%d}" % COUNT_DIGITS_MAX, re.ASCII)


class OptionError(LedgerRuleError):
    """An option the command cannot read (a count that is not a whole number, a malformed pair)."""

    rule = "TXT-1"


def value_day(ledger: Any, text: Optional[str], field: str = "on") -> date:
    """The value date of recorded business: ``--on`` or today, checked against MNY-4's limits."""
    day = parse_date(text, field) if text is not None else ledger.today()
    return ledger.check_value_date(day, field)


def run_day(ledger: Any, text: Optional[str], field: str = "date") -> date:
    """The day a job runs through (offset run, retries, daily update): today or earlier, never ahead of
    the wall clock — a run dated in the future would deduct or accrue before its day (MNY-4)."""
    day = parse_date(text, field) if text is not None else ledger.today()
    if day > ledger.today():
        raise ValueDateError(f"a run through {day} is after today {ledger.today()}", field=field)
    return day


def day_or_none(text: Optional[str], field: str) -> Optional[date]:
    """An as-of date for a query (any real day in range), or None when omitted."""
    return parse_date(text, field) if text is not None else None


def codes(**fields: Optional[str]) -> None:
    """TXT-1 for required codes, numbers, keys and references; None means the option was not given."""
    for field, value in fields.items():
        if value is not None:
            check_code(value, field)


def optional_codes(**fields: Optional[str]) -> None:
    """TXT-1 for codes that may be given empty (``--serial ""``), never blank or hostile."""
    for field, value in fields.items():
        if value is not None:
            check_code(value, field, required=False)


def names(**fields: Optional[str]) -> None:
    """TXT-1 for names and free text (member name, payee, reason)."""
    for field, value in fields.items():
        if value is not None:
            check_name(value, field)


def count(text: str, field: str, maximum: int, rule: str) -> int:
    """A whole number 0..``maximum`` written in ASCII digits (months, allocation numbers), else refused
    under ``rule``, the rule the number serves."""
    if not isinstance(text, str) or not _COUNT_TEXT.fullmatch(text.strip(" ")):
        raise OptionError(f"a whole number of at most {COUNT_DIGITS_MAX} digits (got {str(text)[:20]!r})",
                          field=field, rule=rule)
    number = int(text)
    if number > maximum:
        raise OptionError(f"at most {maximum} (got {number})", field=field, rule=rule)
    return number


def evidence_fields(items: list[str]) -> dict[str, str]:
    """``-e field=value`` pairs (WD-1 evidence): field a code, value a name, each checked (TXT-1)."""
    if len(items) > EVIDENCE_FIELDS_MAX:
        raise OptionError(f"at most {EVIDENCE_FIELDS_MAX} evidence fields", field="evidence")
    fields: dict[str, str] = {}
    for item in items:
        name, separator, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not separator or not name:
            raise OptionError(f"evidence is field=value (got {item[:CODE_CHARS_MAX]!r})", field="evidence")
        check_code(name, "evidence")
        fields[name] = check_name(value, name, required=False)
    return fields
