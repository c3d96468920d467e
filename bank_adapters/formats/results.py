"""BDC108 批量结果下载: the bank's result file for a debit batch (``|`` separated).

The first line is the summary, starting with ``$`` (14 fields); then one detail line per instruction
(16 fields); optionally ``#END`` as the last line. Amounts may omit decimals (``5``). The summary's
总笔数/总金额, 成功笔数/成功金额 and 失败笔数/失败金额 must equal the detail lines' counts and sums, success
being 响应码 ``00000``; otherwise the file is refused whole (BNK-3). 序号 (the batch line it answers) is
unique within a file. What each other response code means is ledger policy, not parsed here.
主机日期 may be empty on a failed line; whether a success without it is acceptable is the caller's check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable, Sequence

from ledger.money import Money

from .csv_form import read_csv, write_csv
from .fields import (
    AmountCodec,
    Column,
    DateCodec,
    Entry,
    FileFormat,
    IntegerCodec,
    RawTexts,
    RecordKind,
    TextCodec,
    TextLayout,
)
from .national import read_national, write_national
from .problems import Problems

INCOMING_SEPARATOR = "|"
SUMMARY_PREFIX = "$"
END_MARKER = "#END"
SUCCESS_CODE = "00000"
CURRENCY_CNY = "156"
TOTAL_FIELDS = ("total_count", "total_amount", "success_count", "success_amount", "failure_count", "failure_amount")


@dataclass(frozen=True)
class ResultSummary:
    """The summary line: batch, counts and sums of all, successful and failed lines."""

    batch_on: date
    institution_code: str
    batch_number: str
    category: str
    type_code: str
    currency: str
    cash_remittance: str
    total_count: int
    total_amount: Money
    success_count: int
    success_amount: Money
    failure_count: int
    failure_amount: Money
    memo: str
    raw_texts: RawTexts = field(default=(), compare=False, repr=False)

    @classmethod
    def of(cls, lines: Iterable["ResultLine"], **fields: Any) -> "ResultSummary":
        """A summary whose counts and sums are computed from ``lines``; the other fields by keyword."""
        lines = tuple(lines)
        succeeded = [line for line in lines if line.succeeded]
        failed = [line for line in lines if not line.succeeded]
        return cls(
            total_count=len(lines),
            total_amount=Money.sum(line.amount for line in lines),
            success_count=len(succeeded),
            success_amount=Money.sum(line.amount for line in succeeded),
            failure_count=len(failed),
            failure_amount=Money.sum(line.amount for line in failed),
            **fields,
        )


@dataclass(frozen=True)
class ResultLine:
    """One instruction's outcome. 主机流水号 (``host_reference``) is the bank's reference (BNK-2)."""

    sequence: int
    currency: str
    cash_remittance: str
    amount: Money
    payer_account: str
    payer_name: str
    payer_balance: Money | None
    payee_account: str
    payee_name: str
    payee_balance: Money | None
    response_code: str
    response_message: str
    host_on: date | None
    host_reference: str
    receipt_number: str
    bank_extension: str
    raw_texts: RawTexts = field(default=(), compare=False, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.response_code == SUCCESS_CODE


@dataclass(frozen=True)
class ResultFile:
    """A whole BDC108 file."""

    summary: ResultSummary
    lines: tuple[ResultLine, ...]
    layout: TextLayout = field(default=TextLayout(), compare=False, repr=False)


CURRENCY = Column("currency", "币种", TextCodec())
CASH_REMITTANCE = Column("cash_remittance", "钞汇", TextCodec())
COUNT = IntegerCodec(minimum=0)
SUM = AmountCodec()

SUMMARY_KIND = RecordKind(
    "summary",
    ResultSummary,
    (
        Column("batch_on", "日期", DateCodec()),
        Column("institution_code", "交易机构号", TextCodec()),
        Column("batch_number", "批号", TextCodec(required=True)),
        Column("category", "类别", TextCodec()),
        Column("type_code", "类型", TextCodec()),
        CURRENCY,
        CASH_REMITTANCE,
        Column("total_count", "总笔数", COUNT),
        Column("total_amount", "总金额", SUM),
        Column("success_count", "成功笔数", COUNT),
        Column("success_amount", "成功金额", SUM),
        Column("failure_count", "失败笔数", COUNT),
        Column("failure_amount", "失败金额", SUM),
        Column("memo", "摘要", TextCodec()),
    ),
    prefix=SUMMARY_PREFIX,
)
DETAIL_KIND = RecordKind(
    "detail",
    ResultLine,
    (
        Column("sequence", "序号", IntegerCodec(minimum=1)),
        CURRENCY,
        CASH_REMITTANCE,
        Column("amount", "金额", SUM),
        Column("payer_account", "付方账号", TextCodec(required=True)),
        Column("payer_name", "付方户名", TextCodec()),
        Column("payer_balance", "付方余额", AmountCodec(signed=True, optional=True)),
        Column("payee_account", "收方账号", TextCodec()),
        Column("payee_name", "收方户名", TextCodec()),
        Column("payee_balance", "收方余额", AmountCodec(signed=True, optional=True)),
        Column("response_code", "响应码", TextCodec(required=True)),
        Column("response_message", "响应信息", TextCodec()),
        Column("host_on", "主机日期", DateCodec(optional=True)),
        Column("host_reference", "主机流水号", TextCodec()),
        Column("receipt_number", "回执编号", TextCodec()),
        Column("bank_extension", "银行扩展", TextCodec()),
    ),
)


def _kind_for(index: int, field_count: int) -> RecordKind:
    return SUMMARY_KIND if index == 0 else DETAIL_KIND


def _records_of(result_file: ResultFile) -> list[tuple[RecordKind, Any]]:
    return [(SUMMARY_KIND, result_file.summary), *((DETAIL_KIND, line) for line in result_file.lines)]


def _assemble(entries: Sequence[Entry], layout: TextLayout, problems: Problems) -> ResultFile | None:
    if not entries or entries[0].kind is not SUMMARY_KIND:
        line_number = entries[0].line_number if entries else 1
        problems.add(line_number, "summary", "BNK-3 the first record is the $ summary")
        return None
    for entry in entries[1:]:
        if entry.kind is SUMMARY_KIND:
            problems.add(entry.line_number, "summary", "BNK-3 a result file has one summary")
    if problems:
        return None
    result_file = ResultFile(entries[0].record, tuple(entry.record for entry in entries[1:]), layout)
    _check_unique_sequences(entries[1:], problems)
    _check_summary(result_file, entries[0].line_number, problems)
    return result_file


def _check_unique_sequences(entries: Sequence[Entry], problems: Problems) -> None:
    first_line_of: dict[int, int] = {}
    for entry in entries:
        sequence = entry.record.sequence
        if sequence in first_line_of:
            rule = f"BNK-4 序号 {sequence} is answered twice (first on line {first_line_of[sequence]})"
            problems.add(entry.line_number, "sequence", rule, str(sequence), "序号")
        first_line_of.setdefault(sequence, entry.line_number)


def _check_summary(result_file: ResultFile, line_number: int, problems: Problems) -> None:
    summary = result_file.summary
    expected = ResultSummary.of(result_file.lines, **_other_fields(summary))
    for column in SUMMARY_KIND.columns:
        stated = getattr(summary, column.name)
        computed = getattr(expected, column.name)
        if stated != computed:
            rule = f"BNK-3 summary {column.label} disagrees with the detail lines, which give {computed}"
            problems.add(line_number, column.name, rule, str(stated), column.label)


def _other_fields(summary: ResultSummary) -> dict[str, Any]:
    names = [column.name for column in SUMMARY_KIND.columns if column.name not in TOTAL_FIELDS]
    return {name: getattr(summary, name) for name in names}


RESULT_FILE_FORMAT = FileFormat(
    name="BDC108",
    kinds=(SUMMARY_KIND, DETAIL_KIND),
    separator=INCOMING_SEPARATOR,
    kind_for=_kind_for,
    field_counts_text="14 (summary) or 16 (detail)",
    assemble=_assemble,
    records_of=_records_of,
    end_marker=END_MARKER,
)


def parse_result_file(data: bytes, encoding: str = "GBK") -> ResultFile:
    """Parse a whole BDC108 result file (GBK or GB18030); BankFileError lists every problem."""
    return read_national(RESULT_FILE_FORMAT, data, encoding)


def write_result_file(result_file: ResultFile, encoding: str = "GBK") -> bytes:
    """Write a BDC108 result file; BankFileError if a field or total is wrong."""
    return write_national(RESULT_FILE_FORMAT, result_file, encoding)


def parse_result_file_csv(data: bytes) -> ResultFile:
    """Parse the CSV form of a BDC108 result file."""
    return read_csv(RESULT_FILE_FORMAT, data)


def write_result_file_csv(result_file: ResultFile) -> bytes:
    """Write the CSV form of a BDC108 result file."""
    return write_csv(RESULT_FILE_FORMAT, result_file)
