"""The plain CSV form of each bank file: UTF-8, one header row of English field names, one row per record.

A file with one record kind (BDC106, statements) has exactly that kind's columns. A file with a header
record (BDC105 batch header, BDC108 summary) has a first column ``record_kind`` naming each row's kind
(``header``/``same_bank``/``other_bank``, ``summary``/``detail``) followed by the union of the kinds'
columns in file order; columns that do not belong to a row's kind stay empty. Values are written
exactly as in the national files (amounts ``2067.79``, dates ``20250215``, flags ``0``/``1``/``Y``), so
the same codecs and the same whole-file rules apply. A field may not hold a line break, so every row is
one physical line and problems name real line numbers. A UTF-8 byte-order mark is accepted and kept.
"""

from __future__ import annotations

import codecs
import csv
import io
from typing import Any

from .fields import Entry, FileFormat, RecordKind, TextLayout, parse_record, render_record
from .national import split_lines
from .problems import FILE_BYTES_MAX, FILE_LINES_MAX, WHOLE_FILE, Problems

RECORD_KIND_COLUMN = "record_kind"
CSV_ENCODING = "utf-8"
HEADER_LINE_NUMBER = 1
FIRST_ROW_LINE_NUMBER = 2


def csv_columns(file_format: FileFormat) -> list[str]:
    """The header row of a file format's CSV form."""
    names: list[str] = [RECORD_KIND_COLUMN] if len(file_format.kinds) > 1 else []
    for kind in file_format.kinds:
        names.extend(column.name for column in kind.columns if column.name not in names)
    return names


def read_csv(file_format: FileFormat, data: bytes) -> Any:
    """Parse a whole CSV file into its file object, or raise BankFileError with every problem."""
    problems = Problems()
    text, layout = _decoded(file_format, data, problems)
    entries = _parse_rows(file_format, text, problems) if text is not None else []
    result = file_format.assemble(entries, layout, problems) if not problems else None
    problems.raise_if_any()
    assert result is not None
    return result


def write_csv(file_format: FileFormat, file: Any) -> bytes:
    """Write a file object in CSV form; every field and the whole-file rules are checked first."""
    problems = Problems()
    records = file_format.records_of(file)
    if len(records) + 1 > FILE_LINES_MAX:
        problems.add(WHOLE_FILE, "file", f"BNK-3 more than FILE_LINES_MAX = {FILE_LINES_MAX} lines")
        problems.raise_if_any()
    names = csv_columns(file_format)
    entries = [Entry(index + FIRST_ROW_LINE_NUMBER, kind, record) for index, (kind, record) in enumerate(records)]
    rows = [_row(names, entry, problems) for entry in entries]
    problems.raise_if_any()
    file_format.assemble(entries, file.layout, problems)
    problems.raise_if_any()
    return _encoded([names, *rows], file.layout)


# -- reading ------------------------------------------------------------------------------------
def _decoded(file_format: FileFormat, data: bytes, problems: Problems) -> tuple[str | None, TextLayout]:
    if len(data) > FILE_BYTES_MAX:
        problems.add(WHOLE_FILE, "file", f"BNK-3 larger than FILE_BYTES_MAX = {FILE_BYTES_MAX} bytes")
        return None, TextLayout()
    bom = data.startswith(codecs.BOM_UTF8)
    raw_lines, layout = split_lines(data[len(codecs.BOM_UTF8):] if bom else data)
    layout = TextLayout(layout.newline, layout.final_newline, bom=bom)
    if len(raw_lines) > FILE_LINES_MAX:
        problems.add(WHOLE_FILE, "file", f"BNK-3 more than FILE_LINES_MAX = {FILE_LINES_MAX} lines")
        return None, layout
    lines = [_decoded_line(file_format, index + 1, raw_line, problems) for index, raw_line in enumerate(raw_lines)]
    if problems:
        return None, layout
    return "\n".join(line or "" for line in lines), layout


def _decoded_line(file_format: FileFormat, line_number: int, raw_line: bytes, problems: Problems) -> str | None:
    try:
        return raw_line.decode(CSV_ENCODING)
    except UnicodeDecodeError:
        pass
    lossy = raw_line.decode(CSV_ENCODING, "surrogateescape")
    try:
        cells = next(csv.reader([lossy]), [""])
    except csv.Error:  # a stray carriage return or quote: name the field by commas alone
        cells = lossy.split(",")
    index = next((i for i, cell in enumerate(cells) if _has_escaped_byte(cell)), 0)
    names = csv_columns(file_format)
    name = names[index] if index < len(names) else f"field {index + 1}"
    shown = cells[index].encode(CSV_ENCODING, "surrogateescape").hex(" ")
    problems.add(line_number, name, "BNK-1 wrong encoding: bytes that are not valid UTF-8", shown)
    return None


def _has_escaped_byte(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _parse_rows(file_format: FileFormat, text: str, problems: Problems) -> list[Entry]:
    names = csv_columns(file_format)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    entries: list[Entry] = []
    try:
        header = next(reader, [])
        if header != names:
            rule = f"BNK-3 the header row must be {','.join(names)}"
            problems.add(HEADER_LINE_NUMBER, "header", rule, ",".join(header))
            return []
        for cells in reader:
            entry = _parse_row(file_format, names, reader.line_num, cells, problems)
            if entry is not None:
                entries.append(entry)
    except csv.Error as error:
        problems.add(reader.line_num, "line", f"BNK-3 not valid CSV: {error}")
    return entries


def _parse_row(
    file_format: FileFormat, names: list[str], line_number: int, cells: list[str], problems: Problems
) -> Entry | None:
    if len(cells) != len(names):
        rule = f"BNK-3 wrong field count: {len(cells)}, expected {len(names)}"
        problems.add(line_number, "line", rule, ",".join(cells))
        return None
    row = dict(zip(names, cells, strict=True))
    kind = _kind_of(file_format, row, line_number, problems)
    if kind is None:
        return None
    own_names = {column.name for column in kind.columns} | {RECORD_KIND_COLUMN}
    for name in names:
        if name not in own_names and row[name]:
            problems.add(line_number, name, f"BNK-3 not a column of a {kind.name} row; leave it empty", row[name])
    texts = [row[column.name] for column in kind.columns]
    record = parse_record(kind, texts, line_number, problems)
    return None if record is None else Entry(line_number, kind, record)


def _kind_of(file_format: FileFormat, row: dict[str, str], line_number: int, problems: Problems) -> RecordKind | None:
    if len(file_format.kinds) == 1:
        return file_format.kinds[0]
    text = row[RECORD_KIND_COLUMN]
    for kind in file_format.kinds:
        if kind.name == text:
            return kind
    allowed = ", ".join(kind.name for kind in file_format.kinds)
    problems.add(line_number, RECORD_KIND_COLUMN, f"BNK-3 must be one of {allowed}", text)
    return None


# -- writing ------------------------------------------------------------------------------------
def _row(names: list[str], entry: Entry, problems: Problems) -> list[str]:
    texts = render_record(entry.kind, entry.record, entry.line_number, problems)
    if texts is None:
        return []
    row = dict.fromkeys(names, "")
    if RECORD_KIND_COLUMN in row:
        row[RECORD_KIND_COLUMN] = entry.kind.name
    for column, text in zip(entry.kind.columns, texts, strict=True):
        row[column.name] = text
        _check_encodable(entry.line_number, column.name, column.label, text, problems)
    return [row[name] for name in names]


def _check_encodable(line_number: int, name: str, label: str, text: str, problems: Problems) -> None:
    try:
        text.encode(CSV_ENCODING)
    except UnicodeEncodeError as error:
        bad = text[error.start:error.end]
        rule = f"BNK-1 {bad!r} cannot be encoded in UTF-8; text is never replaced"
        problems.add_unencodable(line_number, name, rule, text, label)


def _encoded(rows: list[list[str]], layout: TextLayout) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=layout.newline)
    writer.writerows(rows)
    text = buffer.getvalue()
    if not layout.final_newline:
        text = text[: -len(layout.newline)]
    data = text.encode(CSV_ENCODING)
    return codecs.BOM_UTF8 + data if layout.bom else data
