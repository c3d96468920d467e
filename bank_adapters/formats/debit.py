"""BDC105 贷款扣款: the loan repayment debit batch the centre sends to its bank (``@|$`` separated).

Layout chosen for the header (BANK-FORMATS.md names its fields but not where they go): the first line
is the header record, tagged ``H``, then one line per debit::

    H@|$文件类型@|$收款账号@|$收款户名@|$总笔数@|$总金额@|$批次项目编号@|$
    H@|$1@|$3100000001@|$某市住房公积金管理中心@|$1@|$2067.79@|$PJ202502150001@|$
    1@|$2067.79@|$6217000000000000000@|$张三@|$0@|$202502150000001 公积金贷款扣划@|$

文件类型 is 1 (same bank: every line has the 6 same-bank fields), 2 (other banks: every line has the 10
other-bank fields) or 3 (mixed: each line has 6 or 10). 序号 runs 1, 2, 3… in line order; 总笔数 and
总金额 equal the count and sum of the lines (BNK-3); a batch holds at least one debit. In the CSV form
the header is the row with record_kind ``header``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from .problems import Problems
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
    """A whole BDC105 file: header and debits in line order."""

    header: DebitBatchHeader
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
    ) -> "DebitBatch":
        """A batch whose header totals are computed from ``records``; the file type is inferred if not given."""
        records = tuple(records)
        header = DebitBatchHeader(
            file_type=file_type or _file_type_of(records),
            account_number=account_number,
            account_name=account_name,
            total_count=len(records),
            total_amount=Money.sum(record.amount for record in records),
            project_number=project_number,
        )
        return cls(header, records)


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
        Column("agreement_number", "多方协议号", TextCodec(required=True)),
        PARTIAL_ALLOWED,
        MEMO,
    ),
)
KIND_BY_FIELD_COUNT = {SAME_BANK_KIND.field_count: SAME_BANK_KIND, OTHER_BANK_KIND.field_count: OTHER_BANK_KIND}
KIND_OF_FILE_TYPE = {
    DebitFileType.SAME_BANK: (SameBankDebit,),
    DebitFileType.OTHER_BANKS: (OtherBankDebit,),
    DebitFileType.MIXED: (SameBankDebit, OtherBankDebit),
}


def _kind_for(index: int, field_count: int) -> RecordKind | None:
    return HEADER_KIND if index == 0 else KIND_BY_FIELD_COUNT.get(field_count)


def _records_of(batch: DebitBatch) -> list[tuple[RecordKind, Any]]:
    kinds = [SAME_BANK_KIND if isinstance(record, SameBankDebit) else OTHER_BANK_KIND for record in batch.records]
    return [(HEADER_KIND, batch.header), *zip(kinds, batch.records, strict=True)]


def _assemble(entries: Sequence[Entry], layout: TextLayout, problems: Problems) -> DebitBatch | None:
    if not entries or entries[0].kind is not HEADER_KIND:
        line_number = entries[0].line_number if entries else 1
        problems.add(line_number, "header", "BNK-3 the first record is the batch header")
        return None
    for entry in entries[1:]:
        if entry.kind is HEADER_KIND:
            problems.add(entry.line_number, "header", "BNK-3 a batch has one header")
    if problems:
        return None
    batch = DebitBatch(entries[0].record, tuple(entry.record for entry in entries[1:]), layout)
    _check_records(batch, entries, problems)
    _check_totals(batch, entries[0].line_number, problems)
    return batch


def _check_records(batch: DebitBatch, entries: Sequence[Entry], problems: Problems) -> None:
    allowed = KIND_OF_FILE_TYPE[batch.header.file_type]
    for expected_sequence, entry in enumerate(entries[1:], start=1):
        if not isinstance(entry.record, allowed):
            rule = f"BNK-3 a file of type {int(batch.header.file_type)} holds no {entry.kind.name} lines"
            problems.add(entry.line_number, "line", rule)
        if entry.record.sequence != expected_sequence:
            rule = f"BNK-3 序号 runs from 1 in line order: expected {expected_sequence}"
            problems.add(entry.line_number, "sequence", rule, str(entry.record.sequence), "序号")


def _check_totals(batch: DebitBatch, header_line_number: int, problems: Problems) -> None:
    header = batch.header
    if header.total_count != len(batch.records):
        rule = f"BNK-3 总笔数 disagrees with the {len(batch.records)} debit lines"
        problems.add(header_line_number, "total_count", rule, str(header.total_count), "总笔数")
    total = Money.sum(record.amount for record in batch.records)
    if header.total_amount != total:
        rule = f"BNK-3 总金额 disagrees with the sum of the debit lines, {total}"
        problems.add(header_line_number, "total_amount", rule, str(header.total_amount), "总金额")


DEBIT_BATCH_FORMAT = FileFormat(
    name="BDC105",
    kinds=(HEADER_KIND, OTHER_BANK_KIND, SAME_BANK_KIND),
    separator=OUTGOING_SEPARATOR,
    kind_for=_kind_for,
    field_counts_text="6 (same bank) or 10 (other banks)",
    assemble=_assemble,
    records_of=_records_of,
)


def parse_debit_batch(data: bytes, encoding: str = "GBK") -> DebitBatch:
    """Parse a whole BDC105 debit batch (GBK or GB18030); BankFileError lists every problem."""
    return read_national(DEBIT_BATCH_FORMAT, data, encoding)


def write_debit_batch(batch: DebitBatch, encoding: str = "GBK") -> bytes:
    """Write a BDC105 debit batch; BankFileError if a field or total is wrong."""
    return write_national(DEBIT_BATCH_FORMAT, batch, encoding)


def parse_debit_batch_csv(data: bytes) -> DebitBatch:
    """Parse the CSV form of a BDC105 debit batch."""
    return read_csv(DEBIT_BATCH_FORMAT, data)


def write_debit_batch_csv(batch: DebitBatch) -> bytes:
    """Write the CSV form of a BDC105 debit batch."""
    return write_csv(DEBIT_BATCH_FORMAT, batch)
