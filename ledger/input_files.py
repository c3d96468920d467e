"""Files staff hand to a command (remittance lists 清册, certificates, policy files): read within limits and
checked whole before anything is applied (BNK-3 applies to every file, not only the national bank files).

A file that cannot be read, is too large, is not UTF-8, or holds a CSV line whose field count differs from
its header is refused whole: :class:`InputFileError` carries every problem found (line, field, message,
rule) and prints them as ``line 3, field 9: … [BNK-3]``, one a line, so an entry point shows
``field: message [RULE]`` and exits 2, never a traceback. Line numbers count from 1 as an editor shows
them (the header is line 1); line 0 is the file as a whole. Lines that parse but break a business rule
are the caller's to report (left out, the rest applied).
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from bank_adapters.formats.problems import FIELD_CHARS_MAX, FILE_BYTES_MAX
from ledger.rules import LedgerRuleError

FILE_RULE = "BNK-3"
WHOLE_FILE = 0
HEADER_LINE_NUMBER = 1
PROBLEMS_KEPT_MAX = 1_000
PROBLEMS_SHOWN_MAX = 20
CSV_LINE_CHARS_MAX = 16 * FIELD_CHARS_MAX
READ_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FileProblem:
    """One thing wrong with a file: where (line, field), what, and the rule it breaks."""

    line: int
    field: str
    message: str
    rule: str = FILE_RULE

    @property
    def where(self) -> str:
        """``line 3, amount``; ``file`` for the file as a whole."""
        if self.line == WHOLE_FILE:
            return self.field if self.field == "file" else f"file, {self.field}"
        return f"line {self.line}, {self.field}"

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.rule}]"

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "field": self.field, "rule": self.rule, "message": self.message}


class InputFileError(LedgerRuleError):
    """BNK-3: a file that does not parse is refused whole; every problem is listed with its line and field."""

    rule = FILE_RULE

    def __init__(self, problems: Sequence[FileProblem], omitted_count: int = 0):
        assert problems, "an InputFileError needs at least one problem"
        self.problems = tuple(problems)
        self.omitted_count = omitted_count
        first = self.problems[0]
        super().__init__(first.message, field=first.where, rule=first.rule)

    def __str__(self) -> str:
        shown = [str(problem) for problem in self.problems[:PROBLEMS_SHOWN_MAX]]
        hidden_count = len(self.problems) - len(shown) + self.omitted_count
        return "\n".join(shown + ([f"... and {hidden_count} more"] if hidden_count else []))


class FileProblems:
    """Collects the problems of one file while it is read; raises once, at the end, if there is any."""

    def __init__(self) -> None:
        self.found: list[FileProblem] = []
        self.omitted_count = 0

    def add(self, line: int, field: str, message: str, rule: str = FILE_RULE) -> None:
        if len(self.found) >= PROBLEMS_KEPT_MAX:
            self.omitted_count += 1
            return
        self.found.append(FileProblem(line, field, message, rule))

    def __bool__(self) -> bool:
        return bool(self.found)

    def raise_if_any(self) -> None:
        if self.found:
            raise InputFileError(self.found, self.omitted_count)


def refuse(field: str, message: str, line: int = WHOLE_FILE, rule: str = FILE_RULE) -> InputFileError:
    """One problem as an error, for a whole-file refusal."""
    return InputFileError([FileProblem(line, field, message, rule)])


def checked_size(path: Path, size_max: int = FILE_BYTES_MAX, field: str = "file") -> int:
    """The file's size in bytes; refused if it cannot be read or is larger than ``size_max``."""
    try:
        size = Path(path).stat().st_size
    except OSError as error:
        raise refuse(field, f"{path} cannot be read: {error.strerror or error}") from None
    if size > size_max:
        raise refuse(field, f"{size} bytes is larger than the limit of {size_max} bytes")
    return size


def read_input_bytes(path: Path, size_max: int = FILE_BYTES_MAX, field: str = "file") -> bytes:
    """The whole file, refused (never a traceback) when it cannot be read, is too large or holds nothing."""
    checked_size(path, size_max, field)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise refuse(field, f"{path} cannot be read: {error.strerror or error}") from None
    if not data.strip():
        raise refuse(field, f"{path} is empty: there is nothing in it to read")
    return data


def input_line_count(path: Path) -> int:
    """Lines in a file (a progress bar's total), counted in bytes: any encoding, any size under the limit."""
    checked_size(path)
    count = 0
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(READ_CHUNK_BYTES), b""):
                count += chunk.count(b"\n")
    except OSError as error:
        raise refuse("file", f"{path} cannot be read: {error.strerror or error}") from None
    return count


def decode_utf8_text(data: bytes, field: str = "file") -> str:
    """UTF-8 text (a byte-order mark allowed), refused with the line of the first bad byte."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise refuse(field, f"not UTF-8 text: byte 0x{data[error.start]:02x} cannot be decoded", line) from None


# -- CSV with a header row --------------------------------------------------------------------------
class CsvFile:
    """A UTF-8 CSV file checked line by line while it is read: decoding, size of each field, field count
    against the header (``names`` it must hold, ``optional`` ones it may). Rows come out as dicts with
    their line numbers; the structural problems are raised together once the file has been read."""

    def __init__(self, path: Path, names: Sequence[str], lines_max: int, optional: Sequence[str] = ()):
        self.path = Path(path)
        self.names = tuple(names)
        self.allowed = set(names) | set(optional)
        self.lines_max = lines_max
        self.header: list[str] = []
        self.problems = FileProblems()

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(line number, row) for each well-formed line; InputFileError at the end if any line was not."""
        checked_size(self.path)
        try:
            with open(self.path, "rb") as handle:
                yield from self._rows(handle)
        except OSError as error:
            self.problems.add(WHOLE_FILE, "file", f"cannot be read: {error.strerror or error}")
        self.problems.raise_if_any()

    def _rows(self, handle: Iterable[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
        reader = csv.reader(self._text_lines(handle), strict=True)
        try:
            self.header = next(reader, [])
            if not self._header_ok():
                return
            for cells in reader:
                row = self._row(reader.line_num, cells)
                if row is not None:
                    yield reader.line_num, row
        except csv.Error as error:
            self.problems.add(reader.line_num, "line", f"not valid CSV: {error}")

    def _text_lines(self, handle: Iterable[bytes]) -> Iterator[str]:
        """Each line decoded; a line that is not UTF-8 or too long is reported and read as empty."""
        for number, raw in enumerate(handle, start=1):
            if number > self.lines_max:
                self.problems.add(WHOLE_FILE, "file", f"more than {self.lines_max} lines")
                return
            raw = raw.removeprefix(codecs.BOM_UTF8) if number == HEADER_LINE_NUMBER else raw
            text = self._decoded(number, raw)
            if text is not None and len(text) > CSV_LINE_CHARS_MAX:
                self.problems.add(number, self._long_field(text), f"longer than FIELD_CHARS_MAX = "
                                                                  f"{FIELD_CHARS_MAX} characters")
                text = None
            yield "\n" if text is None else text

    def _decoded(self, number: int, raw: bytes) -> str | None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            index = raw.count(b",", 0, error.start)
            field = "header" if number == HEADER_LINE_NUMBER else self._name(index)
            self.problems.add(number, field, f"not UTF-8 text: byte 0x{raw[error.start]:02x} cannot be decoded "
                                             "(a CSV list is UTF-8; save it as UTF-8, not GBK)")
            return None

    def _long_field(self, text: str) -> str:
        cells = text.split(",")
        index = next((i for i, cell in enumerate(cells) if len(cell) > FIELD_CHARS_MAX), 0)
        return self._name(index)

    def _name(self, index: int) -> str:
        return self.header[index] if index < len(self.header) else f"field {index + 1}"

    def _header_ok(self) -> bool:
        if self.problems:
            return False  # the header line itself did not decode
        absent = [name for name in self.names if name not in self.header]
        unknown = [name for name in self.header if name not in self.allowed]
        doubled = sorted({name for name in self.header if self.header.count(name) > 1})
        for field, message in ((absent, "missing from the header row"), (unknown, "not a column of this file"),
                               (doubled, "named twice in the header row")):
            if field:
                self.problems.add(HEADER_LINE_NUMBER, field[0] if field[0] else "header",
                                  f"{', '.join(field)}: {message} (the header is {','.join(self.names)})")
        return not self.problems

    def _row(self, number: int, cells: list[str]) -> dict[str, str] | None:
        if not cells:
            return None  # an empty line (or one already reported)
        if len(cells) != len(self.header):
            index = min(len(cells), len(self.header))
            self.problems.add(number, self._name(index), f"{len(cells)} fields where the header has "
                                                         f"{len(self.header)}: the line is refused, not cut")
            return None
        long = next((i for i, cell in enumerate(cells) if len(cell) > FIELD_CHARS_MAX), None)
        if long is not None:
            self.problems.add(number, self._name(long), f"longer than FIELD_CHARS_MAX = {FIELD_CHARS_MAX} characters")
            return None
        return dict(zip(self.header, cells, strict=True))
