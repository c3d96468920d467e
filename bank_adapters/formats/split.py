"""BDC106 贷款本息分解: the split of collected repayments into principal, interest, penalty and fees (``@|$``).

One line per repayment, 18 fields, no header. 还款金额 = 本金 + 利息 + 罚息 + 违约金 for the debited part, and
非扣款还贷金额 = the sum of its four 非扣款 parts for what was repaid another way (e.g. from fund accounts by
the monthly offset, OFF-2); both are checked on reading and writing. Note the file's order: the debited
part lists 罚息 before 违约金, the 非扣款 part 违约金 before 罚息. 序号 runs 1, 2, 3… in line order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ledger.money import Money

from .csv_form import read_csv, write_csv
from .fields import AmountCodec, Column, Entry, FileFormat, IntegerCodec, RawTexts, RecordKind, TextCodec, TextLayout
from .national import read_national, write_national
from .problems import Problems
from .serials import find_serial

OUTGOING_SEPARATOR = "@|$"


@dataclass(frozen=True)
class SplitRecord:
    """One repayment split (业务明细账号 / 业务明细流水号 are the loan's sub-account and its business serial)."""

    sequence: int
    detail_account: str
    detail_serial: str
    id_number: str
    contract_number: str
    name: str
    repayment: Money
    principal: Money
    interest: Money
    penalty: Money
    default_fee: Money
    non_debit_repayment: Money
    non_debit_principal: Money
    non_debit_interest: Money
    non_debit_default_fee: Money
    non_debit_penalty: Money
    memo: str
    remark: str
    raw_texts: RawTexts = field(default=(), compare=False, repr=False)

    @property
    def serial(self) -> str | None:
        return find_serial(self.memo)


@dataclass(frozen=True)
class SplitFile:
    """A whole BDC106 file."""

    records: tuple[SplitRecord, ...]
    layout: TextLayout = field(default=TextLayout(), compare=False, repr=False)


AMOUNT = AmountCodec()
SPLIT_KIND = RecordKind(
    "split",
    SplitRecord,
    (
        Column("sequence", "序号", IntegerCodec(minimum=1)),
        Column("detail_account", "业务明细账号", TextCodec(required=True)),
        Column("detail_serial", "业务明细流水号", TextCodec()),
        Column("id_number", "身份证号", TextCodec()),
        Column("contract_number", "合同编号", TextCodec(required=True)),
        Column("name", "姓名", TextCodec(required=True)),
        Column("repayment", "还款金额", AMOUNT),
        Column("principal", "贷款本金发生额", AMOUNT),
        Column("interest", "贷款利息发生额", AMOUNT),
        Column("penalty", "贷款罚息发生额", AMOUNT),
        Column("default_fee", "贷款违约金发生额", AMOUNT),
        Column("non_debit_repayment", "非扣款还贷金额", AMOUNT),
        Column("non_debit_principal", "非扣款贷款本金发生额", AMOUNT),
        Column("non_debit_interest", "非扣款贷款利息发生额", AMOUNT),
        Column("non_debit_default_fee", "非扣款贷款违约金发生额", AMOUNT),
        Column("non_debit_penalty", "非扣款贷款罚息发生额", AMOUNT),
        Column("memo", "摘要", TextCodec()),
        Column("remark", "备注", TextCodec()),
    ),
)
PARTS_OF = {
    "repayment": ("principal", "interest", "penalty", "default_fee"),
    "non_debit_repayment": ("non_debit_principal", "non_debit_interest", "non_debit_penalty", "non_debit_default_fee"),
}
LABEL_OF = {column.name: column.label for column in SPLIT_KIND.columns}


def _kind_for(index: int, field_count: int) -> RecordKind:
    return SPLIT_KIND


def _records_of(split_file: SplitFile) -> list[tuple[RecordKind, Any]]:
    return [(SPLIT_KIND, record) for record in split_file.records]


def _assemble(entries: Sequence[Entry], layout: TextLayout, problems: Problems) -> SplitFile:
    for expected_sequence, entry in enumerate(entries, start=1):
        if entry.record.sequence != expected_sequence:
            rule = f"BNK-3 序号 runs from 1 in line order: expected {expected_sequence}"
            problems.add(entry.line_number, "sequence", rule, str(entry.record.sequence), "序号")
        _check_parts(entry, problems)
    return SplitFile(tuple(entry.record for entry in entries), layout)


def _check_parts(entry: Entry, problems: Problems) -> None:
    for total_name, part_names in PARTS_OF.items():
        stated = getattr(entry.record, total_name)
        computed = Money.sum(getattr(entry.record, name) for name in part_names)
        if stated != computed:
            rule = f"BNK-3 {LABEL_OF[total_name]} must equal the sum of its parts, {computed}"
            problems.add(entry.line_number, total_name, rule, str(stated), LABEL_OF[total_name])


SPLIT_FILE_FORMAT = FileFormat(
    name="BDC106",
    kinds=(SPLIT_KIND,),
    separator=OUTGOING_SEPARATOR,
    kind_for=_kind_for,
    field_counts_text=str(SPLIT_KIND.field_count),
    assemble=_assemble,
    records_of=_records_of,
)


def parse_split_file(data: bytes, encoding: str = "GBK") -> SplitFile:
    """Parse a whole BDC106 split file (GBK or GB18030); BankFileError lists every problem."""
    return read_national(SPLIT_FILE_FORMAT, data, encoding)


def write_split_file(split_file: SplitFile, encoding: str = "GBK") -> bytes:
    """Write a BDC106 split file; BankFileError if a field or total is wrong."""
    return write_national(SPLIT_FILE_FORMAT, split_file, encoding)


def parse_split_file_csv(data: bytes) -> SplitFile:
    """Parse the CSV form of a BDC106 split file."""
    return read_csv(SPLIT_FILE_FORMAT, data)


def write_split_file_csv(split_file: SplitFile) -> bytes:
    """Write the CSV form of a BDC106 split file."""
    return write_csv(SPLIT_FILE_FORMAT, split_file)
