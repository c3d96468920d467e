"""What is wrong with a bank file: problems with line number, field and rule, and the errors that carry them.

A bank file is checked whole before anything is returned (BNK-3): every problem found is collected in a
:class:`Problems` list and, if there is any, one :class:`BankFileError` carries them all. Line numbers
count from 1 as an editor shows them; line 0 means the file as a whole. The limits every reader and
writer enforces are named here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

FILE_BYTES_MAX = 256 * 1024 * 1024
FILE_LINES_MAX = 1_000_000
PROBLEMS_KEPT_MAX = 1_000
PROBLEMS_SHOWN_MAX = 20
VALUE_SHOWN_CHARS_MAX = 40
FIELD_CHARS_MAX = 1_000
WHOLE_FILE = 0
ENCODINGS = ("GBK", "GB18030")
DEFAULT_RULE = "BNK-3"
RULE_ID = re.compile(r"([A-Z]+-[0-9]+) (.*)", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (line, field) and which rule it breaks."""

    line_number: int
    field: str
    rule: str
    value: str = ""
    label: str = ""

    def __str__(self) -> str:
        """``line 3, amount (金额): not an amount … (got '1e3') [MNY-1]``: where, field, message, rule."""
        where = "file" if self.line_number == WHOLE_FILE else f"line {self.line_number}"
        label = f" ({self.label})" if self.label else ""
        shown = f" (got {self.value!r})" if self.value else ""
        rule_id, message = split_rule(self.rule)
        return f"{where}, {self.field}{label}: {message}{shown} [{rule_id}]"


def split_rule(text: str) -> tuple[str, str]:
    """(rule id, message) of a problem's rule text ``"BNK-3 wrong field count: …"``; BNK-3 when it names none."""
    matched = RULE_ID.fullmatch(text)
    return (matched.group(1), matched.group(2)) if matched else (DEFAULT_RULE, text)


class BankFileError(ValueError):
    """BNK-3: a bank file that does not parse (or cannot be written) is refused whole."""

    def __init__(self, problems: Sequence[Problem], omitted_count: int = 0):
        assert problems, "a BankFileError needs at least one problem"
        self.problems = tuple(problems)
        self.omitted_count = omitted_count
        shown = [str(problem) for problem in self.problems[:PROBLEMS_SHOWN_MAX]]
        hidden_count = len(self.problems) - len(shown) + omitted_count
        more = [f"... and {hidden_count} more"] if hidden_count else []
        super().__init__("bank file refused:\n  " + "\n  ".join(shown + more))


class UnencodableTextError(BankFileError):
    """BNK-1: a text (usually a name) cannot be encoded in the bank's encoding; it is never replaced."""


class UnsupportedEncodingError(ValueError):
    """BNK-1: the national files are GBK or GB18030, nothing else."""


def normalize_encoding(encoding: str) -> str:
    """'gbk' -> 'GBK'; anything but GBK and GB18030 is refused."""
    name = str(encoding).strip().upper().replace("-", "").replace("_", "")
    if name not in ENCODINGS:
        raise UnsupportedEncodingError(f"BNK-1 encoding must be one of {ENCODINGS}, got {encoding!r}")
    return name


class Problems:
    """Collects problems while a whole file is checked; raises once at the end."""

    def __init__(self) -> None:
        self.found: list[Problem] = []
        self.omitted_count = 0
        self.unencodable = False

    def add(self, line_number: int, field: str, rule: str, value: str = "", label: str = "") -> None:
        if len(self.found) >= PROBLEMS_KEPT_MAX:
            self.omitted_count += 1
            return
        shown = value if len(value) <= VALUE_SHOWN_CHARS_MAX else value[:VALUE_SHOWN_CHARS_MAX] + "…"
        self.found.append(Problem(line_number, field, rule, shown, label))

    def add_unencodable(self, line_number: int, field: str, rule: str, value: str, label: str) -> None:
        self.unencodable = True
        self.add(line_number, field, rule, value, label)

    def __bool__(self) -> bool:
        return bool(self.found)

    def raise_if_any(self) -> None:
        if not self.found:
            return
        error_class = UnencodableTextError if self.unencodable else BankFileError
        raise error_class(self.found, self.omitted_count)
