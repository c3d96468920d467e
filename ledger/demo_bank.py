"""The demo's entrusted bank, speaking the national files (BDC105 out, BDC108 and SBDC100 in).

Each day the centre exports its debit batch as a GBK file; the bank answers with a
BDC108 result file (the poor borrowers' cards fail with 余额不足, now and then a
batch line is 批次被撤销); the centre imports it. At the end the bank sends a
statement of the last days with a few planted differences, and the centre
reconciles it (REC-1): the report must find each one.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from bank_adapters.formats import (
    ResultFile,
    ResultLine,
    ResultSummary,
    StatementFile,
    StatementLine,
    parse_result_file,
    parse_statement,
    write_debit_batch,
    write_debit_control,
    write_result_file,
    write_statement,
)
from ledger.money import Money
from ledger.reconcile import bank_book_entries, reconcile, to_text
from ledger.services.banking import debit_batch_file

BANK = "ICBC"
ENCODING = "GBK"
FEE = Money("5.00")


def exchange_debit_files(ledger: Any, day: date, out: Path, poor: set[str], rng: random.Random,
                         revokes_per_mille: int) -> dict[str, int]:
    """Export the day's batch, answer it as the bank, import the answer; returns outcome counts."""
    record = ledger.export_debits(BANK, day, encoding=ENCODING)
    if not record.get("rows") or record.get("repeat"):
        return {}
    out.mkdir(parents=True, exist_ok=True)
    batch = debit_batch_file(record)
    (out / f"BDC105-{BANK}-{record['batch_number']}.txt").write_bytes(write_debit_batch(batch, ENCODING))
    (out / f"BDC105-{BANK}-{record['batch_number']}.ctl").write_bytes(write_debit_control(batch, ENCODING))
    lines = []
    for row in record["rows"]:
        code, message = "00000", "成功"
        if row["loan_no"] in poor:
            code, message = "E0001", "余额不足"
        elif rng.randrange(1000) < revokes_per_mille:
            code, message = "E0003", "批次被撤销"
        lines.append(ResultLine(row["sequence"], "156", "1", Money(row["amount"]), row["card"]["number"], row["name"],
                                None, record["account"], record["account_name"], None, code, message, day,
                                f"{day:%m%d}{row['sequence']:06d}", "", ""))
    summary = ResultSummary.of(lines, batch_on=day, institution_code="102100099996",
                               batch_number=record["batch_number"], category="1", type_code="BDC105", currency="156",
                               cash_remittance="1", memo="批量扣款结果")
    data = write_result_file(ResultFile(summary, tuple(lines)), ENCODING)
    (out / f"BDC108-{BANK}-{record['batch_number']}.txt").write_bytes(data)
    report = ledger.import_debit_results(parse_result_file(data, ENCODING), bank=BANK)
    counts: dict[str, int] = {}
    for line in report.get("lines", []):
        state = (line.get("result") or {}).get("state") or line.get("status", "?")
        counts[state] = counts.get(state, 0) + 1
    return counts


def _line(number: int, account: str, amount: Money, on: date, host: str, remark: str,
          reversal: bool = False) -> StatementLine:
    return StatementLine(number, account, host, "", "", "", amount, on, "101500", None, "", remark, "156", "1", None,
                         None, "", "", "", "", reversal, "", "")


def statement_with_planted_differences(ledger: Any, through: date) -> tuple[StatementFile, list[str]]:
    """The bank's view of the whole account: one line per business (a batch is one line), four
    differences planted: a line missing, an amount changed, a fee, a 冲正 pair."""
    account = ledger.centre_bank_account
    groups: dict[str, list[Any]] = {}
    for entry in bank_book_entries(ledger, account, through):
        groups.setdefault(entry.serial or entry.key, []).append(entry)
    ordered = sorted(groups.items(), key=lambda item: (max(e.value_date for e in item[1]), item[0]))
    lines, planted = [], []
    changed_index = len(ordered) // 2
    for index, (serial, entries) in enumerate(ordered):
        amount = Money.sum(e.amount for e in entries)
        on = max(e.value_date for e in entries)
        if index == len(ordered) - 1:
            planted.append(f"ledger-only (in transit): {serial} {amount} on {on}")
            continue
        if index == changed_index:
            planted.append(f"amount differs: {serial} ledger {amount}, bank {amount + Money('10.00')}")
            amount = amount + Money("10.00")
        remark = f"{serial} {entries[0].kind}" if entries[0].serial else entries[0].kind
        lines.append(_line(len(lines) + 1, account, amount, on, f"S{len(lines) + 1:06d}", remark))
    lines.append(_line(len(lines) + 1, account, -FEE, through, "FEE0001", "账户管理费"))
    planted.append(f"bank-only: fee {-FEE}")
    lines.append(_line(len(lines) + 1, account, Money("88.00"), through, "X000001", "误入款"))
    lines.append(_line(len(lines) + 1, account, Money("-88.00"), through, "X000001", "冲正 误入款", reversal=True))
    planted.append("reversal pair: 88.00 in and 冲正 out")
    running, numbered = Money("0.00"), []
    for line in lines:
        running = running + line.amount
        numbered.append(replace(line, balance=running))
    return StatementFile(tuple(numbered)), planted


def reconcile_demo(ledger: Any, through: date, out: Path) -> dict[str, Any]:
    statement, planted = statement_with_planted_differences(ledger, through)
    data = write_statement(statement, ENCODING)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"SBDC100-{BANK}-{through:%Y%m%d}.txt"
    path.write_bytes(data)
    (result,) = reconcile(ledger, parse_statement(data, ENCODING), statement_on=through, dry_run=True)
    (out / f"reconciliation-{through:%Y%m%d}.txt").write_text(to_text(result), encoding="utf-8")
    counts: dict[str, int] = {}
    for row in result.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    sheet = {k: str(v) if isinstance(v, Money) else v for k, v in result.sheet().items()}
    return {"statement": str(path), "planted": planted, "results": counts, "sheet": sheet}
