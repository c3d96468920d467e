"""Bank reconciliation (REC-1): a statement with planted differences, and each one found and named.

The centre of ``test_banking`` gets a month of bank traffic on its account 3100000001: the 2024
remittances (one bank line each, six member credits in the ledger), a disbursement and withdrawals paid,
money held in suspense, a card-debit batch collected. The statement agrees with most of it and plants:
a payment whose amount differs, bank interest and a fee the ledger has not booked, a line and its 冲正,
a payment the ledger booked today (in transit) and one it booked a month ago (missing at the bank).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bank_adapters.formats import write_statement
from ledger.money import Money
from ledger.reconcile import ReconciliationRun, reconcile, to_csv, to_text
from test_banking import (
    BANK,
    CENTRE,
    DEDUCTION_ON,
    LoanCentre,
    banking_ledger,
    build_loan_centre,
    head,
    result_file,
    statement,
    statement_line,
)

runner = CliRunner()
S = DEDUCTION_ON


def _pay_out(ledger: Any) -> dict[str, Any]:
    """Settle the 500,000.00 disbursement and three 50,400.00 withdrawals on chosen dates."""
    pending = ledger.pending_payouts()
    disbursement = next(p for p in pending if p.amount == Money("500000.00"))
    withdrawals = [p for p in pending if p.amount == Money("50400.00")][:3]
    days = {"P0": date(2025, 2, 10), "P1": date(2025, 2, 12), "P2": S, "P3": date(2025, 1, 20)}
    payouts = {"P0": disbursement, "P1": withdrawals[0], "P2": withdrawals[1], "P3": withdrawals[2]}
    for name, payout in payouts.items():
        ledger.settle_payout(payout.serial, True, days[name], f"{BANK}/{days[name]:%Y%m%d}/{name}")
    return {name: payout.serial for name, payout in payouts.items()}


def traffic(centre: LoanCentre) -> dict[str, Any]:
    ledger = centre.ledger
    record = ledger.export_debits(BANK, S, "GBK")
    ledger.import_debit_results(result_file(record))
    serials = _pay_out(ledger)
    ledger.receive(BANK, "20250214", "R1", CENTRE, "300.00", date(2025, 2, 14), "")
    documents = [ledger.find(i) for i in ledger.ids_of("ledger.aggregates.documents:RemittanceDocument.Registered")]
    return {"batch": record, "payouts": serials, "documents": sorted(documents, key=lambda d: d.period)}


def planted_statement(facts: dict[str, Any]) -> Any:
    lines = [statement_line(n + 1, str(d.total), date(2024, int(d.period[5:]), 5), f"M{n}", f"{d.serial} 汇缴")
             for n, d in enumerate(facts["documents"])]
    payouts, batch = facts["payouts"], facts["batch"]
    lines += [
        statement_line(8, "-500000.00", date(2025, 2, 10), "B8", f"{payouts['P0']} 放款"),
        statement_line(9, "-50040.00", date(2025, 2, 12), "B9", f"{payouts['P1']} 提取"),
        statement_line(10, "300.00", date(2025, 2, 14), "R1", "来款"),
        statement_line(11, batch["total"], S, "B11", f"{batch['batch_number']} 批量扣款"),
        statement_line(12, "12.34", S, "B12", "结息"),
        statement_line(13, "-5.00", S, "B13", "手续费"),
        statement_line(14, "77.00", date(2025, 2, 15), "X9", "误入"),
        statement_line(15, "-77.00", date(2025, 2, 16), "X9", "冲正 误入", reversal=True),
    ]
    return statement(*lines)


def rows_by_status(result: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for row in result.rows:
        found.setdefault(f"{row.status}:{row.transit}" if row.transit else row.status, []).append(row)
    return found


@pytest.fixture
def centre(store_url: str, clock: Any) -> Any:
    ledger = banking_ledger(store_url, clock)
    yield build_loan_centre(ledger, clock)
    ledger.close()


def test_each_planted_difference_is_found_and_the_sheet_names_the_difference(centre: LoanCentre) -> None:
    facts = traffic(centre)
    before = head(centre.ledger)
    (result,) = reconcile(centre.ledger, planted_statement(facts), dry_run=True)
    assert head(centre.ledger) == before
    found = rows_by_status(result)
    matched = found["matched"]
    assert sorted(r.how for r in matched) == ["amount", "batch", "serial"] + ["serial"] * 7
    assert all(len(r.entries) == 6 for r in matched if r.how == "serial" and r.bank_amount == Money("43200.00"))
    assert [len(r.entries) for r in matched if r.how == "batch"] == [3]
    (differs,) = found["amount-differs"]
    assert (differs.bank_amount, differs.ledger_amount) == (Money("-50040.00"), Money("-50400.00"))
    assert sorted(str(r.bank_amount) for r in found["bank-only"]) == ["-5.00", "12.34"]
    assert [r.items[0].line for r in found["reversal-pair"]] == [14]
    assert [r.entries[0].value_date for r in found["ledger-only:in-transit"]] == [S]
    assert [r.entries[0].value_date for r in found["ledger-only:missing-at-bank"]] == [date(2025, 1, 20)]
    sheet = result.sheet()
    assert sheet["bank_balance"] == planted_statement(facts).closing_balance
    assert sheet["adjusted_book_balance"] == sheet["book_balance"] + Money("12.34") - Money("5.00")
    assert sheet["adjusted_bank_balance"] == sheet["bank_balance"] - Money("100800.00")
    assert sheet["difference"] == Money("-360.00")
    assert sheet["named_differences"] == {"amount_differs": Money("-360.00")}


def test_a_real_run_is_recorded_once_and_the_next_carries_what_is_open(centre: LoanCentre) -> None:
    facts = traffic(centre)
    ledger = centre.ledger
    planted = planted_statement(facts)
    (first,) = reconcile(ledger, planted, dry_run=False)
    run = ledger.find(ReconciliationRun.create_id(CENTRE, S))
    assert run.counts == first.counts() and len(run.outstanding) == 2 and run.sheet["difference"] == "-360.00"
    before = head(ledger)
    (again,) = reconcile(ledger, planted, dry_run=False)
    assert again.repeat and head(ledger) == before
    with pytest.raises(Exception, match="idempotency|other content"):
        reconcile(ledger, statement(statement_line(1, "1.00", S, "Z1", "")), dry_run=False)
    next_day = date(2025, 2, 18)
    centre.on(next_day)
    ledger.receive(BANK, "20250218", "B12", CENTRE, "12.34", next_day, "")
    tomorrow = statement(statement_line(1, "-50400.00", next_day, "C1", f"{facts['payouts']['P2']} 提取"),
                         opening=planted.closing_balance)
    (second,) = reconcile(ledger, tomorrow, dry_run=False)
    found = rows_by_status(second)
    assert {r.how for r in found["matched"]} == {"serial", "amount"}
    assert [str(r.bank_amount) for r in found["bank-only"]] == ["-5.00"]
    assert [r.entries[0].value_date for r in found["ledger-only:missing-at-bank"]] == [date(2025, 1, 20)]
    assert second.sheet()["named_differences"] == {"amount_differs_carried": Money("-360.00")}
    assert ledger.check_books()["ok"]


def test_reports_as_text_csv_and_through_the_cli(sqlite_url: str, clock: Any, tmp_path: Path) -> None:
    from ledger.cli import app
    from ledger.cli_bank import register_bank_commands

    ledger = banking_ledger(sqlite_url, clock)
    facts = traffic(build_loan_centre(ledger, clock))
    planted = planted_statement(facts)
    (result,) = reconcile(ledger, planted)
    text = to_text(result)
    assert "银行存款余额调节表" in text and "DIFFERENCE -360.00" in text and "amount differs: -360.00" in text
    rows = list(csv.DictReader(io.StringIO(to_csv([result]))))
    assert len(rows) == len(result.rows) and {r["status"] for r in rows} >= {"bank-only", "ledger-only"}
    ledger.close()
    register_bank_commands(app)
    path, csv_path = tmp_path / "SBDC100.txt", tmp_path / "rec.csv"
    path.write_bytes(write_statement(planted))
    out = runner.invoke(app, ["--db", sqlite_url, "reconcile", str(path), "--dry-run", "--json",
                              "--csv", str(csv_path)])
    assert out.exit_code == 1, out.stdout
    payload = json.loads(out.stdout)
    assert payload["results"][0]["sheet"]["difference"] == "-360.00" and not payload["results"][0]["recorded"]
    assert csv_path.read_text("utf-8").startswith("account,statement_on,status")
