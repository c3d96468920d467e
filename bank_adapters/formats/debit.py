"""BDC105 贷款扣款: the loan repayment debit batch the centre sends to its bank (``@|$`` separated).

A batch has header fields (文件类型, the centre's receiving account 收款账号 and name 收款户名, 总笔数, 总金额,
批次项目编号) and one line per debit, 序号 from 1. In the files banks actually exchange the header is **not a
line of the file**: it travels with the batch request (the platform's message, or the file name and a
control record), and the file holds only its detail lines::

    1@|$2067.79@|$6217000000000000000@|$张三@|$0@|$202502150000001 公积金贷款扣划@|$
    2@|$1391.79@|$6228480000000000001@|$李四@|$103100000019@|$103100000027@|$@|$@|$1@|$202502150000002 扣划@|$

That is how this module writes the ledger's own batches (``DebitBatch.build(..., header_line=False)``), with
the header in a one-line **control record** beside the file (:func:`write_debit_control`,
``文件类型@|$收款账号@|$收款户名@|$总笔数@|$总金额@|$批次项目编号@|$``); ``parse_debit_batch(data,
request=header)`` checks the lines against the request they belong to (file type, 总笔数, 总金额, BNK-3).
It still reads (and writes back byte for byte) the older form whose first line is the header, tagged ``H``::

    H@|$1@|$3100000001@|$某市住房公积金管理中心@|$1@|$2067.79@|$PJ202502150001@|$

A line is told by its field count: 6 same bank, 10 other banks, 7 the ``H`` header (first line only).
文件类型 is 1 (same bank: every line has the 6 same-bank fields), 2 (other banks: every line has the 10
other-bank fields) or 3 (mixed: each line has 6 or 10). On other-bank lines 付方地址 and 多方协议号 may be
empty, as banks send them. 序号 runs 1, 2, 3… in line order; 总笔数 and 总金额 equal the count and sum of the
lines; a batch holds at least one debit. In the CSV form the header is the row with record_kind
``header`` (written whenever the batch has a header; a CSV without one is read like a national file
without its header line).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Iterable, Sequence, Union

from ledger.money import Money

from .csv_form import read_csv, write_csv
from .fields import (
    AmountCodec,
    ChoiceCodec,
    Column,
    DigitsCodec,
    Entry,
    FileFormat,
    FlagCodec,
    IntegerCodec,
    RawTexts,
    RecordKind,
    TextCodec,
    TextLayout,
)
from .national import read_national, write_national
from .problems import WHOLE_FILE, Problems
from .serials import find_serial

OUTGOING_SEPARATOR = "@|$"
HEADER_TAG = "H"
BRANCH_CODE_DIGITS = 12
DEBIT_RECORDS_MIN = 1


class DebitFileType(IntEnum):
    """文件类型 of a BDC105 batch."""

    SAME_BANK = 1
    OTHER_BANKS = 2
    MIXED = 3


@dataclass(frozen=True)
class DebitBatchHeader:
    """The batch header: file type, the centre's receiving account, totals, batch project number."""

    file_type: DebitFileType
    account_number: str
    account_name: str
    total_count: int
    total_amount: Money
    project_number: str
    raw_texts: RawTexts = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class SameBankDebit:
    """One debit from a card at the centre's own bank (6 fields). ``partial_allowed`` is 足额标志 1."""

    sequence: int
    amount: Money
    payer_account: str
    payer_name: str
    partial_allowed: bool
    memo: str
    raw_texts: RawTexts = field(default=(), compare=False, repr=False)

    @property
    def serial(self) -> str | None:
        return find_serial(self.memo)


@dataclass(frozen=True)
class OtherBankDebit:
    """One debit from a card at another bank (10 fields): branch codes and the tripartite agreement."""

    sequence: int
    amount: Money
    payer_account: str
    payer_name: str
    payer_bank_code: str
    payer_branch_code: str
    payer_address: str
    agreement_number: str
    partial_allowed: bool
    memo: str
    raw_texts: RawTexts = field(default=(), compare=False, repr=False)

    @property
    def serial(self) -> str | None:
        return find_serial(self.memo)


Debit = Union[SameBankDebit, OtherBankDebit]


@dataclass(frozen=True)
class DebitBatch:
    """A whole BDC105 batch: its header (None when a file without header line is read without its request)
    and debits in line order. ``layout.header_line`` says whether the header is written as the first line."""

    header: DebitBatchHeader | None
    records: tuple[Debit, ...]
    layout: TextLayout = field(default=TextLayout(), compare=False, repr=False)

    @classmethod
    def build(
        cls,
        *,
        account_number: str,
        account_name: str,
        project_number: str,
        records: Iterable[Debit],
        file_type: DebitFileType | None = None,
        header_line: bool = True,
    ) -> "DebitBatch":
        """A batch whose header totals are computed from ``records``; the file type is inferred if not given.
        ``header_line=False`` is the form banks exchange: the header goes in the control record."""
        records = tuple(records)
        header = DebitBatchHeader(
            file_type=file_type or _file_type_of(records),
            account_number=account_number,
            account_name=account_name,
            total_count=len(records),
            total_amount=Money.sum(record.amount for record in records),
            project_number=project_number,
        )
        return cls(header, records, TextLayout(header_line=header_line))


@dataclass(frozen=True)
class DebitControl:
    """The control record: a batch's header fields on one line of their own, beside a file without them."""

    header: DebitBatchHeader
    layout: TextLayout = field(default=TextLayout(final_newline=True), compare=False, repr=False)


def _file_type_of(records: Sequence[Debit]) -> DebitFileType:
    if all(isinstance(record, SameBankDebit) for record in records):
        return DebitFileType.SAME_BANK
    if all(isinstance(record, OtherBankDebit) for record in records):
        return DebitFileType.OTHER_BANKS
    return DebitFileType.MIXED


SEQUENCE = Column("sequence", "序号", IntegerCodec(minimum=1))
DEBIT_AMOUNT = Column("amount", "金额", AmountCodec(positive=True))
PAYER_ACCOUNT = Column("payer_account", "付方账号", TextCodec(required=True))
PAYER_NAME = Column("payer_name", "付方户名", TextCodec(required=True))
PARTIAL_ALLOWED = Column("partial_allowed", "足额标志", FlagCodec(true_text="1", false_text="0"))
MEMO = Column("memo", "摘要", TextCodec())

HEADER_KIND = RecordKind(
    "header",
    DebitBatchHeader,
    (
        Column("file_type", "文件类型", ChoiceCodec(DebitFileType)),
        Column("account_number", "收款账号", TextCodec(required=True)),
        Column("account_name", "收款户名", TextCodec(required=True)),
        Column("total_count", "总笔数", IntegerCodec(minimum=DEBIT_RECORDS_MIN)),
        Column("total_amount", "总金额", AmountCodec(positive=True)),
        Column("project_number", "批次项目编号", TextCodec(required=True)),
    ),
    tag=HEADER_TAG,
)
SAME_BANK_KIND = RecordKind(
    "same_bank",
    SameBankDebit,
    (SEQUENCE, DEBIT_AMOUNT, PAYER_ACCOUNT, PAYER_NAME, PARTIAL_ALLOWED, MEMO),
)
OTHER_BANK_KIND = RecordKind(
    "other_bank",
    OtherBankDebit,
    (
        SEQUENCE,
        DEBIT_AMOUNT,
        PAYER_ACCOUNT,
        PAYER_NAME,
        Column("payer_bank_code", "付方联行号", DigitsCodec(BRANCH_CODE_DIGITS)),
        Column("payer_branch_code", "付方开户行联行号", DigitsCodec(BRANCH_CODE_DIGITS)),
        Column("payer_address", "付方地址", TextCodec()),
        Column("agreement_number", "多方协议号", TextCodec()),  # often empty in the files banks send
        PARTIAL_ALLOWED,
        MEMO,
    ),
)
CONTROL_KIND = RecordKind("control", DebitBatchHeader, HEADER_KIND.columns)
KIND_BY_FIELD_COUNT = {
    SAME_BANK_KIND.field_count: SAME_BANK_KIND,
    OTHER_BANK_KIND.field_count: OTHER_BANK_KIND,
    HEADER_KIND.field_count: HEADER_KIND,
}
KIND_OF_FILE_TYPE = {
    DebitFileType.SAME_BANK: (SameBankDebit,),
    DebitFileType.OTHER_BANKS: (OtherBankDebit,),
    DebitFileType.MIXED: (SameBankDebit, OtherBankDebit),
}


def _kind_for(index: int, field_count: int) -> RecordKind | None:
    return KIND_BY_FIELD_COUNT.get(field_count)


def _records_of(batch: DebitBatch) -> list[tuple[RecordKind, Any]]:
    kinds = [SAME_BANK_KIND if isinstance(record, SameBankDebit) else OTHER_BANK_KIND for record in batch.records]
    header = [(HEADER_KIND, batch.header)] if batch.header is not None and batch.layout.header_line else []
    return [*header, *zip(kinds, batch.records, strict=True)]


def _assemble(entries: Sequence[Entry], layout: TextLayout, problems: Problems) -> DebitBatch | None:
    has_header = bool(entries) and entries[0].kind is HEADER_KIND
    for entry in entries[1:] if has_header else entries:
        if entry.kind is HEADER_KIND:
            problems.add(entry.line_number, "header", "BNK-3 the batch header, when a file carries it, is its "
                                                      "first line, once")
    debits = entries[1:] if has_header else entries
    if not debits and not problems:
        line_number = entries[-1].line_number + 1 if entries else 1
        problems.add(line_number, "line", f"BNK-3 a batch holds at least {DEBIT_RECORDS_MIN} debit line")
    if problems:
        return None
    header = entries[0].record if has_header else None
    batch = DebitBatch(header, tuple(entry.record for entry in debits), replace(layout, header_line=has_header))
    _check_against_header(batch, header, [entry.line_number for entry in debits],
                          entries[0].line_number if has_header else WHOLE_FILE, problems)
    return batch


def _check_against_header(batch: DebitBatch, header: DebitBatchHeader | None, line_numbers: Sequence[int],
                          header_line_number: int, problems: Problems) -> None:
    """序号 from 1, each line of a kind its file type allows, and the header's totals (BNK-3)."""
    allowed = KIND_OF_FILE_TYPE[header.file_type] if header is not None else (SameBankDebit, OtherBankDebit)
    for expected_sequence, (line_number, record) in enumerate(zip(line_numbers, batch.records), start=1):
        if not isinstance(record, allowed):
            assert header is not None
            kind = "same_bank" if isinstance(record, SameBankDebit) else "other_bank"
            problems.add(line_number, "line", f"BNK-3 a file of type {int(header.file_type)} holds no {kind} lines")
        if record.sequence != expected_sequence:
            rule = f"BNK-3 序号 runs from 1 in line order: expected {expected_sequence}"
            problems.add(line_number, "sequence", rule, str(record.sequence), "序号")
    if header is not None:
        _check_totals(batch, header, header_line_number, problems)


def _check_totals(batch: DebitBatch, header: DebitBatchHeader, header_line_number: int, problems: Problems) -> None:
    where = "" if header_line_number != WHOLE_FILE else " of the batch request"
    if header.total_count != len(batch.records):
        rule = f"BNK-3 总笔数{where} disagrees with the {len(batch.records)} debit lines"
        problems.add(header_line_number, "total_count", rule, str(header.total_count), "总笔数")
    total = Money.sum(record.amount for record in batch.records)
    if header.total_amount != total:
        rule = f"BNK-3 总金额{where} disagrees with the sum of the debit lines, {total}"
        problems.add(header_line_number, "total_amount", rule, str(header.total_amount), "总金额")


def _with_request(batch: DebitBatch, request: DebitBatchHeader, first_line_number: int) -> DebitBatch:
    """The batch under the header its request carries: lines and totals checked against it (BNK-3)."""
    problems = Problems()
    if batch.header is not None and batch.header != request:
        problems.add(first_line_number - 1, "header", "BNK-3 the file's header line disagrees with the batch request")
    line_numbers = range(first_line_number, first_line_number + len(batch.records))
    _check_against_header(batch, request, line_numbers, WHOLE_FILE, problems)
    problems.raise_if_any()
    return replace(batch, header=request)


def _assemble_control(entries: Sequence[Entry], layout: TextLayout, problems: Problems) -> DebitControl | None:
    if len(entries) != 1:
        problems.add(entries[1].line_number if entries else 1, "line", "BNK-3 a control record is one line")
        return None
    return DebitControl(entries[0].record, layout)


DEBIT_BATCH_FORMAT = FileFormat(
    name="BDC105",
    kinds=(HEADER_KIND, OTHER_BANK_KIND, SAME_BANK_KIND),
    separator=OUTGOING_SEPARATOR,
    kind_for=_kind_for,
    field_counts_text="6 (same bank) or 10 (other banks); 7 for an H header line",
    assemble=_assemble,
    records_of=_records_of,
)
DEBIT_CONTROL_FORMAT = FileFormat(
    name="BDC105-control",
    kinds=(CONTROL_KIND,),
    separator=OUTGOING_SEPARATOR,
    kind_for=lambda index, field_count: CONTROL_KIND,
    field_counts_text=str(CONTROL_KIND.field_count),
    assemble=_assemble_control,
    records_of=lambda control: [(CONTROL_KIND, control.header)],
)


def parse_debit_batch(data: bytes, encoding: str = "GBK", request: DebitBatchHeader | None = None) -> DebitBatch:
    """Parse a whole BDC105 debit batch (GBK or GB18030), with or without its header line; ``request`` is the
    header that travelled with the batch (:func:`parse_debit_control`): the lines are checked against it.
    BankFileError lists every problem."""
    batch = read_national(DEBIT_BATCH_FORMAT, data, encoding)
    if request is None:
        return batch
    return _with_request(batch, request, 2 if batch.layout.header_line else 1)


def write_debit_batch(batch: DebitBatch, encoding: str = "GBK") -> bytes:
    """Write a BDC105 debit batch (its header line only if ``batch.layout.header_line``); BankFileError if a
    field or total is wrong."""
    data = write_national(DEBIT_BATCH_FORMAT, batch, encoding)  # every field, and a header line's totals
    if batch.header is None or not batch.layout.header_line:
        _check_before_writing(batch)
    return data


def parse_debit_control(data: bytes, encoding: str = "GBK") -> DebitBatchHeader:
    """The header fields of a batch from its one-line control record."""
    control: DebitControl = read_national(DEBIT_CONTROL_FORMAT, data, encoding)
    return control.header


def write_debit_control(batch: DebitBatch, encoding: str = "GBK") -> bytes:
    """The control record that carries a batch's header beside a file without header line."""
    _check_before_writing(batch)
    assert batch.header is not None
    return write_national(DEBIT_CONTROL_FORMAT, DebitControl(batch.header), encoding)


def _check_before_writing(batch: DebitBatch) -> None:
    """A batch is written only whole: a header, and lines that agree with it (also when it is not a line of
    the file: then the control record carries it)."""
    problems = Problems()
    if batch.header is None:
        problems.add(WHOLE_FILE, "header", "BNK-3 a batch is written with its header (line or control record)")
    elif all(isinstance(record.amount, Money) for record in batch.records):  # else each field's own check says why
        _check_against_header(batch, batch.header, range(1, len(batch.records) + 1), WHOLE_FILE, problems)
    problems.raise_if_any()


def parse_debit_batch_csv(data: bytes, request: DebitBatchHeader | None = None) -> DebitBatch:
    """Parse the CSV form of a BDC105 debit batch (its header row, or ``request``)."""
    batch = read_csv(DEBIT_BATCH_FORMAT, data)
    if request is None:
        return batch
    return _with_request(batch, request, 3 if batch.layout.header_line else 2)


def write_debit_batch_csv(batch: DebitBatch) -> bytes:
    """Write the CSV form of a BDC105 debit batch, its header row included."""
    data = write_csv(DEBIT_BATCH_FORMAT, replace(batch, layout=replace(batch.layout, header_line=True)))
    _check_before_writing(batch)
    return data
