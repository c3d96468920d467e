"""SBDC100 账户变动通知 / BDC113 账户交易明细: movements on the centre's bank accounts (``|`` separated).

One line per movement, 23 fields, no header. 金额 is negative for money leaving the centre's account;
冲正标识 ``Y`` marks a reversal of an earlier line (BNK-6; ``N`` or empty: not a reversal); 备注 carries the
centre's serial (BNK-4), found by :attr:`StatementLine.serial`. 余额 is the balance after the line, so
the last line's 余额 is what the bank-deposit book reconciles to. Balances may be empty. Matching, posting
and suspense (BNK-4, BNK-5) are the ledger's business, not this parser's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Sequence

from ledger.money import Money

from .csv_form import read_csv, write_csv
from .fields import (
    AmountCodec,
    Column,
    DateCodec,
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

INCOMING_SEPARATOR = "|"
REVERSAL_FLAG = "Y"


@dataclass(frozen=True)
class StatementLine:
    """One movement on one of the centre's bank accounts."""

    sequence: int
    account_number: str
    host_reference: str
    transaction_code: str
    counterparty_account: str
    counterparty_name: str
    amount: Money
    transaction_on: date
    transaction_time: str
    available_amount: Money | None
    institution_code: str
    remark: str
    currency: str
    cash_remittance: str
    balance: Money | None
    overdraft_available: Money | None
    voucher_kind: str
    voucher_number: str
    counterparty_bank_code: str
    memo: str
    reversal: bool
    item_number: str
    book_number: str
    raw_texts: RawTexts = field(default=(), compare=False, repr=False)

    @property
    def serial(self) -> str | None:
        """The centre's serial named in 备注, None if there is none (AmbiguousSerialError if two)."""
        return find_serial(self.remark)

    @property
    def is_outgoing(self) -> bool:
        return self.amount.is_negative


@dataclass(frozen=True)
class StatementFile:
    """A whole SBDC100/BDC113 file."""

    lines: tuple[StatementLine, ...]
    layout: TextLayout = field(default=TextLayout(), compare=False, repr=False)

    @property
    def closing_balance(self) -> Money | None:
        """The last line's 余额: what the bank-deposit book must reconcile to."""
        return self.lines[-1].balance if self.lines else None


BALANCE = AmountCodec(signed=True, optional=True)
STATEMENT_KIND = RecordKind(
    "statement",
    StatementLine,
    (
        Column("sequence", "序号", IntegerCodec(minimum=1)),
        Column("account_number", "帐号", TextCodec(required=True)),
        Column("host_reference", "银行主机流水号", TextCodec()),
        Column("transaction_code", "交易代码", TextCodec()),
        Column("counterparty_account", "交易对手账号", TextCodec()),
        Column("counterparty_name", "交易对手户名", TextCodec()),
        Column("amount", "金额", AmountCodec(signed=True)),
        Column("transaction_on", "交易日期", DateCodec()),
        Column("transaction_time", "交易时间", TextCodec()),
        Column("available_amount", "可用金额", BALANCE),
        Column("institution_code", "开户机构号", TextCodec()),
        Column("remark", "备注", TextCodec()),
        Column("currency", "币别", TextCodec()),
        Column("cash_remittance", "钞汇鉴别", TextCodec()),
        Column("balance", "余额", BALANCE),
        Column("overdraft_available", "可透支余额", BALANCE),
        Column("voucher_kind", "凭证种类", TextCodec()),
        Column("voucher_number", "凭证号码", TextCodec()),
        Column("counterparty_bank_code", "交易对手行号", TextCodec()),
        Column("memo", "摘要", TextCodec()),
        Column("reversal", "冲正标识", FlagCodec(true_text=REVERSAL_FLAG, false_text="", false_texts=("N",))),
        Column("item_number", "笔号", TextCodec()),
        Column("book_number", "册号", TextCodec()),
    ),
)


def _kind_for(index: int, field_count: int) -> RecordKind:
    return STATEMENT_KIND


def _records_of(statement: StatementFile) -> list[tuple[RecordKind, Any]]:
    return [(STATEMENT_KIND, line) for line in statement.lines]


def _assemble(entries: Sequence[Entry], layout: TextLayout, problems: Problems) -> StatementFile:
    return StatementFile(tuple(entry.record for entry in entries), layout)


STATEMENT_FORMAT = FileFormat(
    name="SBDC100/BDC113",
    kinds=(STATEMENT_KIND,),
    separator=INCOMING_SEPARATOR,
    kind_for=_kind_for,
    field_counts_text=str(STATEMENT_KIND.field_count),
    assemble=_assemble,
    records_of=_records_of,
)


def parse_statement(data: bytes, encoding: str = "GBK") -> StatementFile:
    """Parse a whole SBDC100/BDC113 statement (GBK or GB18030); BankFileError lists every problem."""
    return read_national(STATEMENT_FORMAT, data, encoding)


def write_statement(statement: StatementFile, encoding: str = "GBK") -> bytes:
    """Write a SBDC100/BDC113 statement; BankFileError if a field or total is wrong."""
    return write_national(STATEMENT_FORMAT, statement, encoding)


def parse_statement_csv(data: bytes) -> StatementFile:
    """Parse the CSV form of a SBDC100/BDC113 statement."""
    return read_csv(STATEMENT_FORMAT, data)


def write_statement_csv(statement: StatementFile) -> bytes:
    """Write the CSV form of a SBDC100/BDC113 statement."""
    return write_csv(STATEMENT_FORMAT, statement)
