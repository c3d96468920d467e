"""Reading and writing the national delimited files (``@|$`` outgoing, ``|`` incoming) in GBK or GB18030.

Reading checks the whole file before returning (BNK-3): size and line limits, the declared encoding
line by line (a line that does not decode is reported with the field holding the bad bytes), then each
record's field count and fields, then the file format's whole-file rules. Bytes are split into lines on
``\\n`` before decoding, which is safe because 0x0A is never part of a GBK or GB18030 character; fields
are split only after decoding, because ``|`` and ``@`` can be the second byte of a GBK character.

UTF-8 sent where GBK was declared usually *decodes* (as nonsense: 张三 -> 寮犱笁), so a file whose bytes
are valid UTF-8 with at least ``UTF8_SUSPECT_CHARS_MIN`` non-ASCII characters is refused as UTF-8. Real
GBK text of that length is valid UTF-8 by chance with a probability well below one in a million.
"""

from __future__ import annotations

from typing import Any, Sequence

from .fields import Entry, FileFormat, RecordKind, TextLayout, parse_record, render_record
from .problems import FILE_BYTES_MAX, FILE_LINES_MAX, WHOLE_FILE, Problems, normalize_encoding

UTF8_SUSPECT_CHARS_MIN = 6
SURROGATE_FIRST = "\udc80"
SURROGATE_LAST = "\udcff"


def read_national(file_format: FileFormat, data: bytes, encoding: str) -> Any:
    """Parse a whole national file into its file object, or raise BankFileError with every problem."""
    encoding = normalize_encoding(encoding)
    problems = Problems()
    lines, layout = _decoded_lines(file_format, data, encoding, problems)
    entries = _parse_lines(file_format, lines, problems)
    result = file_format.assemble(entries, layout, problems) if not problems else None
    problems.raise_if_any()
    assert result is not None
    return result


def write_national(file_format: FileFormat, file: Any, encoding: str) -> bytes:
    """Write a file object; its whole-file rules and every field are checked first."""
    encoding = normalize_encoding(encoding)
    problems = Problems()
    records = file_format.records_of(file)
    _check_line_count(len(records), problems)
    problems.raise_if_any()
    entries = [Entry(index + 1, kind, record) for index, (kind, record) in enumerate(records)]
    lines = [_render_line(file_format, entry, encoding, problems) for entry in entries]
    problems.raise_if_any()
    file_format.assemble(entries, file.layout, problems)
    problems.raise_if_any()
    if file.layout.end_marker and file_format.end_marker:
        lines.append(file_format.end_marker.encode("ascii"))
    return _joined(lines, file.layout)


# -- reading ------------------------------------------------------------------------------------
def _decoded_lines(
    file_format: FileFormat, data: bytes, encoding: str, problems: Problems
) -> tuple[list[tuple[int, str]], TextLayout]:
    if len(data) > FILE_BYTES_MAX:
        problems.add(WHOLE_FILE, "file", f"BNK-3 larger than FILE_BYTES_MAX = {FILE_BYTES_MAX} bytes")
        return [], TextLayout()
    raw_lines, layout = split_lines(data)
    _check_line_count(len(raw_lines), problems)
    if problems or _looks_like_utf8(file_format, raw_lines, encoding, problems):
        return [], layout
    lines: list[tuple[int, str]] = []
    for index, raw_line in enumerate(raw_lines):
        text = _decoded_line(file_format, index, raw_line, encoding, problems)
        if text is not None:
            lines.append((index + 1, text))
    return _without_end_marker(file_format, lines, len(raw_lines), layout, problems)


def split_lines(data: bytes) -> tuple[list[bytes], TextLayout]:
    """Lines of a file and its layout: ``\\n`` or ``\\r\\n`` (if every line has it), final newline or not."""
    final_newline = data.endswith(b"\n")
    body = data[:-1] if final_newline else data
    lines = body.split(b"\n") if body else []
    terminated = lines if final_newline else lines[:-1]
    crlf = bool(terminated) and all(line.endswith(b"\r") for line in terminated)
    if crlf:
        lines = [line[:-1] if index < len(terminated) else line for index, line in enumerate(lines)]
    return lines, TextLayout(newline="\r\n" if crlf else "\n", final_newline=final_newline)


def _check_line_count(line_count: int, problems: Problems) -> None:
    if line_count > FILE_LINES_MAX:
        problems.add(WHOLE_FILE, "file", f"BNK-3 more than FILE_LINES_MAX = {FILE_LINES_MAX} lines")


def _looks_like_utf8(file_format: FileFormat, raw_lines: list[bytes], encoding: str, problems: Problems) -> bool:
    data = b"\n".join(raw_lines)
    if data.isascii():
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    non_ascii_count = len(text) - len(text.encode("ascii", "ignore"))
    if non_ascii_count < UTF8_SUSPECT_CHARS_MIN:
        return False
    index = next(i for i, line in enumerate(raw_lines) if not line.isascii())
    fields = _fields_of(file_format, raw_lines[index].decode("utf-8"))
    field_index = next(i for i, field in enumerate(fields) if not field.isascii())
    name, label = _field_name(file_format, index, fields, field_index)
    rule = f"BNK-1 wrong encoding: the bytes are UTF-8, not the declared {encoding}"
    problems.add(index + 1, name, rule, fields[field_index], label)
    return True


def _decoded_line(
    file_format: FileFormat, index: int, raw_line: bytes, encoding: str, problems: Problems
) -> str | None:
    try:
        return raw_line.decode(encoding)
    except UnicodeDecodeError:
        pass
    name, label, shown = _undecodable_field(file_format, index, raw_line, encoding)
    rule = f"BNK-1 wrong encoding: bytes that are not valid {encoding}"
    problems.add(index + 1, name, rule, shown, label)
    return None


def _undecodable_field(file_format: FileFormat, index: int, raw_line: bytes, encoding: str) -> tuple[str, str, str]:
    """Name the field holding bad bytes: split the lossy text, or the bytes if a bad byte swallowed a separator."""
    fields = _fields_of(file_format, raw_line.decode(encoding, "surrogateescape"))
    if file_format.kind_for(index, len(fields)) is None or not any(_has_surrogate(field) for field in fields):
        fields = _fields_of(file_format, raw_line.decode("latin-1"))
        fields = [field.encode("latin-1").decode(encoding, "surrogateescape") for field in fields]
    field_index = next((i for i, field in enumerate(fields) if _has_surrogate(field)), len(fields) - 1)
    name, label = _field_name(file_format, index, fields, field_index)
    return name, label, _shown_bytes(fields[field_index])


def _fields_of(file_format: FileFormat, text: str) -> list[str]:
    separator = file_format.separator
    body = text[: -len(separator)] if text.endswith(separator) else text
    return body.split(separator)


def _field_name(file_format: FileFormat, index: int, fields: list[str], field_index: int) -> tuple[str, str]:
    kind = file_format.kind_for(index, len(fields))
    if kind is None:
        return f"field {field_index + 1}", ""
    return kind.field_name(field_index)


def _has_surrogate(text: str) -> bool:
    return any(SURROGATE_FIRST <= char <= SURROGATE_LAST for char in text)


def _shown_bytes(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").hex(" ")


def _without_end_marker(
    file_format: FileFormat, lines: list[tuple[int, str]], line_count: int, layout: TextLayout, problems: Problems
) -> tuple[list[tuple[int, str]], TextLayout]:
    marker = file_format.end_marker
    if not marker:
        return lines, layout
    kept: list[tuple[int, str]] = []
    end_marker = False
    for line_number, text in lines:
        if text != marker:
            kept.append((line_number, text))
        elif line_number == line_count:
            end_marker = True
        else:
            problems.add(line_number, "line", f"BNK-3 {marker} may only be the last line", text)
    return kept, TextLayout(layout.newline, layout.final_newline, end_marker=end_marker)


def _parse_lines(file_format: FileFormat, lines: list[tuple[int, str]], problems: Problems) -> list[Entry]:
    entries: list[Entry] = []
    for line_number, text in lines:
        entry = _parse_line(file_format, line_number, text, problems)
        if entry is not None:
            entries.append(entry)
    return entries


def _parse_line(file_format: FileFormat, line_number: int, text: str, problems: Problems) -> Entry | None:
    separator = file_format.separator
    if not text.endswith(separator):
        problems.add(line_number, "line", f"BNK-3 every record ends with {separator}", text)
        return None
    fields = _fields_of(file_format, text)
    kind = file_format.kind_for(line_number - 1, len(fields))
    texts = _record_texts(kind, fields, line_number, problems) if kind is not None else fields
    if texts is None:
        return None
    if kind is None or len(fields) != kind.field_count:
        expected = file_format.field_counts_text if kind is None else str(kind.field_count)
        rule = f"BNK-3 wrong field count: {len(fields)}, expected {expected}"
        problems.add(line_number, "line", rule, text)
        return None
    record = parse_record(kind, texts, line_number, problems)
    return None if record is None else Entry(line_number, kind, record)


def _record_texts(kind: RecordKind, fields: list[str], line_number: int, problems: Problems) -> list[str] | None:
    if kind.prefix:
        if not fields[0].startswith(kind.prefix):
            name, label = kind.field_name(0)
            problems.add(line_number, name, f"BNK-3 the {kind.name} line starts with {kind.prefix}", fields[0], label)
            return None
        fields = [fields[0][len(kind.prefix):], *fields[1:]]
    if kind.tag:
        if fields[0] != kind.tag:
            problems.add(line_number, "record_tag", f"BNK-3 the {kind.name} line starts with {kind.tag}", fields[0])
            return None
        fields = fields[1:]
    return fields


# -- writing ------------------------------------------------------------------------------------
def _render_line(file_format: FileFormat, entry: Entry, encoding: str, problems: Problems) -> bytes:
    kind = entry.kind
    texts = render_record(kind, entry.record, entry.line_number, problems)
    if texts is None:
        return b""
    if kind.tag:
        texts = [kind.tag, *texts]
    if kind.prefix:
        texts = [kind.prefix + texts[0], *texts[1:]]
    separator = file_format.separator
    line = separator.join(texts) + separator
    if line.count(separator) == len(texts):
        try:
            return line.encode(encoding)
        except UnicodeEncodeError:
            pass
    for index, text in enumerate(texts):
        _check_field(kind, index, text, separator, encoding, entry.line_number, problems)
    return b""


def _check_field(
    kind: RecordKind, index: int, text: str, separator: str, encoding: str, line_number: int, problems: Problems
) -> None:
    """Report why one field cannot be written: it holds the separator or cannot be encoded."""
    name, label = kind.field_name(index)
    if separator in text:
        problems.add(line_number, name, f"BNK-3 a field may not hold the separator {separator}", text, label)
        return
    try:
        text.encode(encoding)
    except UnicodeEncodeError as error:
        bad = text[error.start:error.end]
        rule = f"BNK-1 {bad!r} cannot be encoded in {encoding}; text is never replaced"
        problems.add_unencodable(line_number, name, rule, text, label)


def _joined(lines: Sequence[bytes], layout: TextLayout) -> bytes:
    newline = layout.newline.encode("ascii")
    data = newline.join(lines)
    return data + newline if layout.final_newline else data
