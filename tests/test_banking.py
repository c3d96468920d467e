"""Bank files on the ledger (BNK-2..6, OFF-3): BDC105 export, BDC108 results, statements, through the CLI too.

A small centre is built for each test: three borrowing households whose fund accounts are empty, so
the monthly offset puts each whole instalment on the repayment card (one at another bank). The flows
export the day's debit batch, answer it with a BDC108 file, and post statement lines; each malformed
file is refused whole with line numbers, each bad business line is reported and left out while the
rest go through exactly once, and the books stay balanced (GL-2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from stdnum import luhn
from typer.testing import CliRunner

from bank_adapters.formats import (
    BankFileError,
    ResultFile,
    ResultLine,
    ResultSummary,
    StatementFile,
    StatementLine,
    parse_debit_batch,
    parse_debit_control,
    parse_result_file,
    write_debit_batch,
    write_debit_control,
    write_result_file,
    write_result_file_csv,
    write_statement,
)
from ledger.app import Ledger
from ledger.application import CHINA_TZ, Clock, FixedClock
from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.documents import SerialRef
from ledger.money import Money
from ledger.sampledata import credit_code, resident_id
from ledger.services.banking import bank_reference, debit_batch_file, with_banking
from ledger.services.contributions import RemittanceLine

BANK, OTHER_BANK = "ICBC", "CCB"
CENTRE = "3100000001"
CENTRE_NAME = "某市住房公积金管理中心"
DEDUCTION_ON = date(2025, 2, 17)  # instalment 1 due Sat 15 Feb 2025, deducted the next working day
HOUSEHOLDS = ((BANK, "500000.00"), (OTHER_BANK, "400000.00"), (BANK, "300000.00"))
BRANCH_CODE = "105100000017"

runner = CliRunner()


# -- the centre -----------------------------------------------------------------------------------------
def card_number(n: int) -> str:
    base = f"62170000000000{n:04d}"
    return base + luhn.calc_check_digit(base)


@dataclass
class LoanCentre:
    ledger: Any
    clock: FixedClock
    employer: str
    loans: list[str]
    borrowers: list[str]
    accounts: list[str]

    def on(self, day: date) -> None:
        self.clock.set_day(day, 10)


def banking_ledger(url: str, clock: FixedClock) -> Any:
    return with_banking(Ledger)(url, clock=clock)


def _open_households(ledger: Any, clock: FixedClock, count: int) -> tuple[str, list[str], list[str]]:
    day = date(2024, 6, 1)
    clock.set_day(day, 10)
    employer = credit_code(901)
    ledger.open_employer(employer, "银行测试单位", "6222000011112222", day, ratio="12")
    borrowers, accounts = [], []
    for h in range(count):
        pair = [resident_id(date(1990, 1, 1), 100 + 2 * h, True), resident_id(date(1991, 1, 1), 101 + 2 * h, False)]
        for role, number in zip(("借款人", "配偶"), pair):
            ledger.open_member(number, f"{role}{h}", employer, day)
            accounts.append(ledger.open_account(number, day, base="30000.00", from_period="2024-06")["account_no"])
        ledger.link_spouses(pair[0], pair[1], day)
        borrowers.append(pair[0])
    return employer, borrowers, accounts


def _remit_months(ledger: Any, clock: FixedClock, employer: str, accounts: list[str]) -> None:
    for month in range(6, 13):
        period, day = f"2024-{month:02d}", date(2024, month, 5)
        clock.set_day(day, 10)
        lines = [RemittanceLine(i + 1, a, Money("30000.00"), Money("3600.00"), Money("3600.00"))
                 for i, a in enumerate(accounts)]
        document = ledger.register_remittance(employer, period, "remittance", f"D{period}", lines, day)
        ledger.receive(BANK, f"{day:%Y%m%d}", f"H{period}", CENTRE, document["total"], day, document["serial"])


def _lend(ledger: Any, clock: FixedClock, borrowers: list[str], households: tuple) -> list[str]:
    loans = []
    for h, (card_bank, principal) in enumerate(households):
        clock.set_day(date(2025, 1, 10), 10)
        agreement = f"XY2025{h:06d}" if card_bank != BANK else ""
        ledger.set_card(borrowers[h], card_bank, card_number(h + 1), BRANCH_CODE if agreement else "", agreement)
        loan_no = ledger.apply_for_loan(borrowers[h], principal, 360, "equal-instalment", "800000.00", "20000.00",
                                        date(2025, 1, 10), BANK)["loan_no"]
        ledger.approve_loan(loan_no, date(2025, 1, 12))
        clock.set_day(date(2025, 1, 15), 10)
        ledger.disburse_loan(loan_no, date(2025, 1, 15))
        loans.append(loan_no)
    return loans


def _empty_accounts_and_sign(ledger: Any, clock: FixedClock, loans: list[str], borrowers: list[str],
                             accounts: list[str]) -> None:
    clock.set_day(date(2025, 1, 17), 10)
    evidence = {"contract_number": "C1", "price": "800000", "loan_amount": "300000", "contract_date": "2025-01-01"}
    for account in accounts:
        ledger.withdraw(account, "purchase", "50400.00", date(2025, 1, 17), evidence, f"w-{account}")
    for h, loan_no in enumerate(loans):
        spouse = ledger.member(borrowers[h]).spouse_id
        ledger.create_mandate(loan_no, date(2025, 1, 16))
        ledger.sign_mandate(loan_no, borrowers[h], date(2025, 1, 16))
        ledger.sign_mandate(loan_no, ledger.repository.get(spouse).id_number, date(2025, 1, 17))


def build_loan_centre(ledger: Any, clock: FixedClock, households: tuple = HOUSEHOLDS) -> LoanCentre:
    """Three households, loans at ICBC, fund accounts emptied: the offset on 2025-02-17 debits cards."""
    employer, borrowers, accounts = _open_households(ledger, clock, len(households))
    _remit_months(ledger, clock, employer, accounts)
    loans = _lend(ledger, clock, borrowers, households)
    _empty_accounts_and_sign(ledger, clock, loans, borrowers, accounts)
    clock.set_day(DEDUCTION_ON, 10)
    report = ledger.run_offset(DEDUCTION_ON)
    assert report["dates"][0]["debits_created"] == len(households), report
    return LoanCentre(ledger, clock, employer, loans, borrowers, accounts)


# -- bank files -------------------------------------------------------------------------------------------
def result_file(record: dict[str, Any], failures: dict[int, tuple[str, str]] | None = None,
                changes: dict[int, dict[str, Any]] | None = None, prefix: str = "H") -> ResultFile:
    """The bank's BDC108 answer to an exported batch: success unless ``failures`` says otherwise."""
    lines = []
    for row in record["rows"]:
        sequence = row["sequence"]
        code, message = (failures or {}).get(sequence, ("00000", ""))
        line = ResultLine(sequence, "156", "1", Money(row["amount"]), row["card"]["number"], row["name"], None,
                          CENTRE, CENTRE_NAME, None, code, message, DEDUCTION_ON, f"{prefix}{sequence:06d}", "", "")
        lines.append(replace(line, **(changes or {}).get(sequence, {})))
    summary = ResultSummary.of(lines, batch_on=DEDUCTION_ON, institution_code="310000",
                               batch_number=record["batch_number"], category="1", type_code="1", currency="156",
                               cash_remittance="1", memo="贷款扣款")
    return ResultFile(summary, tuple(lines))


def statement_line(sequence: int, amount: str, on: date, host: str, remark: str = "", reversal: bool = False,
                   balance: Money | None = None, account: str = CENTRE) -> StatementLine:
    return StatementLine(sequence, account, host, "", "", "", Money(amount), on, "101500", None, "", remark, "156",
                         "1", balance, None, "", "", "", "", reversal, "", "")


def statement(*lines: StatementLine, opening: Money = Money("0.00")) -> StatementFile:
    """A statement whose 余额 runs from ``opening``."""
    running, out = opening, []
    for line in lines:
        running = running + line.amount
        out.append(replace(line, balance=running))
    return StatementFile(tuple(out))


def head(ledger: Any) -> int:
    return ledger.recorder.max_notification_id()


@pytest.fixture
def centre(store_url: str, clock: FixedClock) -> Any:
    ledger = banking_ledger(store_url, clock)
    yield build_loan_centre(ledger, clock)
    ledger.close()


@pytest.fixture
def sqlite_centre(sqlite_url: str, clock: FixedClock) -> Any:
    ledger = banking_ledger(sqlite_url, clock)
    yield build_loan_centre(ledger, clock)
    ledger.close()


# -- export ----------------------------------------------------------------------------------------------
def test_export_writes_one_batch_same_and_other_bank_forms_and_is_idempotent(centre: LoanCentre) -> None:
    ledger = centre.ledger
    record = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    assert record["count"] == 3 and record["rows"][0]["amount"] == "2067.79"
    assert record["total"] == str(Money.sum(Money(row["amount"]) for row in record["rows"]))
    data, control = write_debit_batch(debit_batch_file(record)), write_debit_control(debit_batch_file(record))
    assert data.startswith(b"1@|$") and control.count(b"\n") == 1  # as banks take it: the header beside the file
    batch = parse_debit_batch(data, request=parse_debit_control(control))
    assert int(batch.header.file_type) == 3 and batch.header.project_number == record["batch_number"]
    kinds = [type(r).__name__ for r in batch.records]
    assert kinds == ["SameBankDebit", "OtherBankDebit", "SameBankDebit"]
    assert [r.serial for r in batch.records] == [row["serial"] for row in record["rows"]]
    assert batch.records[1].agreement_number == "XY2025000001"
    assert {d.state for d in ledger.debits(("SUBMITTED",))} == {"SUBMITTED"}
    again = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    assert again["repeat"] and again["batch_number"] == record["batch_number"]
    assert debit_batch_file(again) == debit_batch_file(record)
    assert ledger.debit_batch(record["batch_number"])["rows"] == record["rows"]
    assert ledger.export_debits(OTHER_BANK, DEDUCTION_ON)["rows"] == []


# -- BDC108 ------------------------------------------------------------------------------------------------
def test_results_collect_and_fail_by_code_and_a_disagreeing_line_is_left_out(centre: LoanCentre) -> None:
    ledger = centre.ledger
    record = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    answer = result_file(record, failures={2: ("E0001", "余额不足")}, changes={3: {"payer_name": "别人"}})
    report = ledger.import_debit_results(answer)
    assert report["counts"] == {"applied": 2, "problem": 1}
    assert [(p["line"], p["field"], p["rule"]) for p in report["problems"]] == [(4, "payer_name", "BNK-4")]
    states = {d.loan_no: d.state for d in ledger.debits(("COLLECTED", "FAILED", "SUBMITTED"))}
    assert [states[n] for n in centre.loans] == ["COLLECTED", "FAILED", "SUBMITTED"]
    assert ledger.loan_status(centre.loans[0], DEDUCTION_ON)["amount_due"] == "0.00"
    assert ledger.loan_status(centre.loans[1], DEDUCTION_ON)["amount_due"] == record["rows"][1]["amount"]
    failed = ledger.debit_by_serial(record["rows"][1]["serial"])
    assert (failed.failure["code"], failed.failure["cause"], failed.next_attempt_on) == ("E0001", "borrower",
                                                                                          date(2025, 2, 18))
    before = head(ledger)
    repeat = ledger.import_debit_results(answer)
    assert repeat["counts"] == {"repeat": 2, "problem": 1} and head(ledger) == before
    fixed = ledger.import_debit_results(result_file(record, failures={2: ("E0001", "余额不足")}))
    assert fixed["counts"] == {"repeat": 2, "applied": 1}
    assert ledger.loan_status(centre.loans[2], DEDUCTION_ON)["amount_due"] == "0.00"
    assert ledger.check_books()["ok"]


def test_a_bank_reference_reused_with_other_content_is_refused(sqlite_centre: LoanCentre) -> None:
    ledger = sqlite_centre.ledger
    record = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    same_reference = {2: {"host_reference": "H000001"}, 3: {"host_reference": "H000001"}}
    report = ledger.import_debit_results(result_file(record, changes=same_reference))
    assert report["counts"] == {"applied": 1, "problem": 2}
    assert {(p["line"], p["rule"]) for p in report["problems"]} == {(3, "IDEMPOTENCY"), (4, "IDEMPOTENCY")}
    receipt = statement(statement_line(1, "10.00", DEDUCTION_ON, "H000001"))
    refused = ledger.import_statement(BANK, receipt)
    assert refused["problems"][0]["rule"] == "BNK-2" and "debit" in refused["problems"][0]["message"]
    assert ledger.check_books()["ok"]


def test_an_unknown_sequence_or_batch_is_reported(sqlite_centre: LoanCentre) -> None:
    ledger = sqlite_centre.ledger
    record = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    answer = result_file(record, changes={3: {"sequence": 9}})
    report = ledger.import_debit_results(answer)
    assert [(p["line"], p["field"]) for p in report["problems"]] == [(4, "sequence")]
    with pytest.raises(LedgerRuleError) as refused:  # an unknown batch needs its bank, to key the money it took
        ledger.import_debit_results(result_file({**record, "batch_number": "202502179999999"}))
    assert (refused.value.field, refused.value.rule) == ("bank", "BNK-5")


def test_money_collected_for_an_unknown_batch_goes_to_suspense_and_failures_are_reported(
        centre: LoanCentre) -> None:
    """BNK-5: a BDC108 file for a batch the ledger never sent is read, not refused: what the bank collected is
    held in suspense (2102) under its bank reference and listed for staff; failed lines are reported."""
    ledger = centre.ledger
    record = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    unknown = {**record, "batch_number": "202502179999999"}
    answer = result_file(unknown, failures={2: ("E0001", "余额不足")}, prefix="U")
    debits_before = {d.serial: d.state for d in ledger.debits(("SUBMITTED",))}
    report = ledger.import_debit_results(answer, bank=BANK)
    assert report["batch_known"] is False and report["counts"] == {"suspense": 2, "problem": 1}
    held = [(row["line"], row["amount"], row["reference"]) for row in report["suspense"]]
    assert held == [(2, record["rows"][0]["amount"], "ICBC/20250217/U000001"),
                    (4, record["rows"][2]["amount"], "ICBC/20250217/U000003")]
    assert [(p["line"], p["field"], p["rule"]) for p in report["problems"]] == [(3, "batch_number", "BNK-4")]
    assert {d.serial: d.state for d in ledger.debits(("SUBMITTED",))} == debits_before  # no debit touched
    listed = {item["reference"]: item for item in ledger.suspense_items()["items"]}
    assert listed["ICBC/20250217/U000001"]["amount"] == record["rows"][0]["amount"]
    assert "202502179999999" in listed["ICBC/20250217/U000001"]["note"]
    assert ledger.suspense_items()["ok"] and ledger.check_books()["ok"] and ledger.trial_balance().difference.is_zero
    before = head(ledger)
    again = ledger.import_debit_results(answer, bank=BANK)
    assert again["counts"] == {"repeat": 2, "problem": 1} and head(ledger) == before
    disagreeing = _edit_field(write_result_file(answer), 0, 9, lambda value: [b"3"])  # 成功笔数 3, lines say 2
    with pytest.raises(BankFileError) as refused:
        parse_result_file(disagreeing)
    assert [(p.line_number, p.field) for p in refused.value.problems][:1] == [(1, "success_count")]


def test_cli_unknown_batch_results_are_held_and_listed_and_a_bad_summary_refused(
        sqlite_url: str, sqlite_centre: LoanCentre, gjj: Any, tmp_path: Path) -> None:
    record = sqlite_centre.ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    answer = result_file({**record, "batch_number": "202502179999999"}, failures={2: ("E0001", "余额不足")},
                         prefix="U")
    bad = tmp_path / "BDC108-bad-summary.txt"
    bad.write_bytes(_edit_field(write_result_file(answer), 0, 9, lambda value: [b"3"]))
    before = head(sqlite_centre.ledger)
    code, out, text = gjj(sqlite_url, "bank", "import", str(bad), "--bank", BANK, "--json")
    assert code == 2 and out["error"]["problems"][0]["field"] == "success_count", text
    assert head(sqlite_centre.ledger) == before
    path = tmp_path / "BDC108-unknown.txt"
    path.write_bytes(write_result_file(answer))
    code, out, text = gjj(sqlite_url, "bank", "import", str(path), "--json")
    assert code == 2 and "bank: " in text and "[BNK-5]" in text
    code, report, text = gjj(sqlite_url, "bank", "import", str(path), "--bank", BANK, "--json")
    assert code == 1 and report["counts"] == {"suspense": 2, "problem": 1}, text  # the failure is reported
    code, listed, text = gjj(sqlite_url, "books", "suspense", "--json")
    assert code == 0 and listed["ok"], text
    references = {item["reference"] for item in listed["items"] if item["kind"] == "bank-receipt"}
    assert {"ICBC/20250217/U000001", "ICBC/20250217/U000003"} <= references


# -- statements -----------------------------------------------------------------------------------------------
def test_statement_lines_post_by_serial_suspense_payouts_and_refusals(centre: LoanCentre) -> None:
    ledger = centre.ledger
    lines = [RemittanceLine(i + 1, a, Money("30000.00"), Money("3600.00"), Money("3600.00"))
             for i, a in enumerate(centre.accounts[:2])]
    document = ledger.register_remittance(centre.employer, "2025-01", "remittance", "D2025-01", lines, DEDUCTION_ON)
    payout = ledger.pending_payouts()[0]
    file = statement(
        statement_line(1, document["total"], DEDUCTION_ON, "S1", f"{document['serial']} 汇缴"),
        statement_line(2, "88.00", DEDUCTION_ON, "S2", "无流水号的来款"),
        statement_line(3, str(-payout.amount), DEDUCTION_ON, "S3", f"{payout.serial} 付款"),
        statement_line(4, "-15.00", DEDUCTION_ON, "S4", "手续费"),
        statement_line(5, "-88.00", DEDUCTION_ON, "S2", "冲正 无流水号的来款", reversal=True),
        statement_line(6, "5.00", DEDUCTION_ON, "S5", "", account="9999999999"),
    )
    report = ledger.import_statement(BANK, file)
    statuses = [(row["line"], row["status"]) for row in report["lines"]]
    assert statuses == [(1, "applied"), (2, "suspense"), (3, "applied"), (4, "problem"), (5, "applied"),
                        (6, "problem")]
    assert [p["field"] for p in report["problems"]] == ["remark", "account_number"]
    assert ledger.balance(centre.accounts[0])["balance"] == "7200.00"
    assert ledger.find(payout.id).state == "PAID"
    assert ledger.suspense_total(date.max) == Money("0.00")
    before = head(ledger)
    again = ledger.import_statement(BANK, file)
    assert again["counts"] == {"repeat": 4, "problem": 2} and head(ledger) == before
    assert ledger.check_books()["ok"]


def test_debit_and_batch_lines_on_a_statement(sqlite_centre: LoanCentre) -> None:
    ledger = sqlite_centre.ledger
    record = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    first, second = record["rows"][0], record["rows"][1]
    file = statement(
        statement_line(1, first["amount"], DEDUCTION_ON, "T1", f"{first['serial']} 扣款"),
        statement_line(2, record["total"], DEDUCTION_ON, "T2", f"{record['batch_number']} 批量扣款"),
        statement_line(3, "1.00", DEDUCTION_ON, "T3", f"{second['serial']} 扣款"),
    )
    report = ledger.import_statement(BANK, file)
    assert [row["status"] for row in report["lines"]] == ["applied", "deferred", "suspense"]
    assert ledger.debit_by_serial(first["serial"]).state == "COLLECTED"
    assert ledger.import_debit_results(result_file(record))["counts"] == {"repeat": 1, "applied": 2}
    assert ledger.check_books()["ok"]


def test_a_reversed_card_collection_reopens_the_instalment(sqlite_centre: LoanCentre) -> None:
    ledger = sqlite_centre.ledger
    record = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    ledger.import_debit_results(result_file(record))
    first = record["rows"][0]
    reversal = statement(statement_line(1, f"-{first['amount']}", DEDUCTION_ON, "H000001",
                                        f"{first['serial']} 冲正", reversal=True))
    report = ledger.import_statement(BANK, reversal)
    assert report["counts"] == {"applied": 1}, report
    assert ledger.loan_status(sqlite_centre.loans[0], DEDUCTION_ON)["amount_due"] == first["amount"]
    assert ledger.import_statement(BANK, reversal)["counts"] == {"repeat": 1}
    assert ledger.check_books()["ok"]


def test_a_reversed_remittance_receipt_takes_the_credit_back_and_the_document_waits_again(
        sqlite_centre: LoanCentre) -> None:
    """BNK-6 on a remittance: each member's credit is mirrored (冲正), the document is PENDING again and the
    periods are free, so the employer's next payment of the same document credits them once."""
    centre = sqlite_centre
    ledger = centre.ledger
    lines = [RemittanceLine(i + 1, a, Money("30000.00"), Money("3600.00"), Money("3600.00"))
             for i, a in enumerate(centre.accounts[:2])]
    document = ledger.register_remittance(centre.employer, "2025-01", "remittance", "D2025-01", lines, DEDUCTION_ON)
    before = ledger.balance(centre.accounts[0])["balance"]
    paid = statement(statement_line(1, document["total"], DEDUCTION_ON, "R1", f"{document['serial']} 汇缴"))
    assert ledger.import_statement(BANK, paid)["counts"] == {"applied": 1}
    assert Money(ledger.balance(centre.accounts[0])["balance"]) == Money(before) + Money("7200.00")
    reversal = statement(statement_line(1, f"-{document['total']}", DEDUCTION_ON, "R1",
                                        f"{document['serial']} 冲正", reversal=True))
    assert ledger.import_statement(BANK, reversal)["counts"] == {"applied": 1}
    assert ledger.balance(centre.accounts[0])["balance"] == before
    ref = ledger.find(SerialRef.create_id(document["serial"]))
    assert ledger.find(ref.target_id).state == "PENDING"
    kinds = [line["kind"] for line in ledger.history(centre.accounts[0])["lines"]][-2:]
    assert kinds == ["remittance", "reversal"]
    assert ledger.check_books()["ok"]
    again = statement(statement_line(1, document["total"], DEDUCTION_ON, "R2", f"{document['serial']} 汇缴"))
    assert ledger.import_statement(BANK, again)["counts"] == {"applied": 1}
    assert Money(ledger.balance(centre.accounts[0])["balance"]) == Money(before) + Money("7200.00")
    assert ledger.find(ref.target_id).state == "RECEIVED"
    assert ledger.check_books()["ok"]


def test_money_returned_after_a_paid_payout_waits_in_suspense(sqlite_centre: LoanCentre) -> None:
    """退汇: the payee's bank returns a payout already paid; the money is held in suspense for staff (BNK-5),
    never credited to anyone by guess, and the books stay whole."""
    ledger = sqlite_centre.ledger
    payout = ledger.pending_payouts()[0]
    paid = statement(statement_line(1, str(-payout.amount), DEDUCTION_ON, "P1", f"{payout.serial} 付款"))
    assert ledger.import_statement(BANK, paid)["counts"] == {"applied": 1}
    returned = statement(statement_line(1, str(payout.amount), DEDUCTION_ON, "P2", f"{payout.serial} 退汇"))
    report = ledger.import_statement(BANK, returned)
    assert [row["status"] for row in report["lines"]] == ["suspense"]
    assert ledger.find(payout.id).state == "PAID"
    assert ledger.suspense_total(date.max) == payout.amount
    assert ledger.check_books()["ok"]


# -- the CLI: malformed files refused whole, nothing half-applied -----------------------------------------
@pytest.fixture
def gjj(monkeypatch: pytest.MonkeyPatch) -> Any:
    from ledger.cli import app
    from ledger.cli_bank import register_bank_commands

    register_bank_commands(app)
    monkeypatch.setattr(Clock, "now", lambda self: datetime(2025, 2, 17, 18, 0, tzinfo=CHINA_TZ))

    def invoke(url: str, *args: str) -> tuple[int, Any, str]:
        result = runner.invoke(app, ["--db", url, *args])
        text = result.stdout
        payload = json.loads(text) if "--json" in args and text.strip().startswith("{") else None
        return result.exit_code, payload, text + (result.stderr or "")
    return invoke


def test_cli_export_then_import_results(sqlite_url: str, sqlite_centre: LoanCentre, gjj: Any, tmp_path: Path) -> None:
    code, out, text = gjj(sqlite_url, "bank", "export-debits", "--bank", BANK, "--date", "2025-02-17",
                          "--out", str(tmp_path), "--json")
    assert code == 0, text
    assert Path(out["file"]).name == f"BDC105_{BANK}_{out['batch_number']}.txt"
    assert Path(out["control"]).name == f"BDC105_{BANK}_{out['batch_number']}.ctl"
    written = Path(out["file"]).read_bytes()
    batch = parse_debit_batch(written, request=parse_debit_control(Path(out["control"]).read_bytes()))
    assert (batch.header.project_number, batch.header.total_count) == (out["batch_number"], 3)
    code, again, text = gjj(sqlite_url, "bank", "export-debits", "--bank", BANK, "--date", "2025-02-17",
                            "--out", str(tmp_path), "--json")
    assert code == 0 and again["repeat"] and Path(again["file"]).read_bytes() == written
    record = sqlite_centre.ledger.debit_batch(out["batch_number"])
    path = tmp_path / "BDC108.txt"
    path.write_bytes(write_result_file(result_file(record, failures={1: ("E0004", "校验位错误")})))
    code, report, text = gjj(sqlite_url, "bank", "import", str(path), "--json")
    assert code == 0, text
    assert report["counts"] == {"applied": 3}
    csv_path = tmp_path / "BDC108.csv"
    csv_path.write_bytes(write_result_file_csv(result_file(record, failures={1: ("E0004", "校验位错误")})))
    code, report, text = gjj(sqlite_url, "bank", "import", str(csv_path), "--format", "csv", "--json")
    assert code == 0 and report["counts"] == {"repeat": 3}, text
    assert sqlite_centre.ledger.debit_by_serial(record["rows"][0]["serial"]).state == "EXHAUSTED"


def _good_result_bytes(ledger: Any) -> tuple[bytes, dict[str, Any]]:
    record = ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    return write_result_file(result_file(record)), record


def _edit_field(data: bytes, line_index: int, field_index: int, edit: Any) -> bytes:
    lines = data.split(b"\n")
    fields = lines[line_index].split(b"|")
    fields[field_index:field_index + 1] = edit(fields[field_index])
    lines[line_index] = b"|".join(fields)
    return b"\n".join(lines)


MALFORMED = {
    "wrong encoding": lambda data: data.replace("借款人0".encode("GBK"), "借款人0".encode("utf-8")),
    "wrong field count": lambda data: _edit_field(data, 2, 1, lambda value: []),
    "bad amount": lambda data: _edit_field(data, 1, 3, lambda value: [value + b"9"]),
    "float-like amount": lambda data: _edit_field(data, 3, 3, lambda value: [b"1.2e3"]),
    "summary disagrees": lambda data: _edit_field(data, 0, 9, lambda value: [b"2"]),
}


@pytest.mark.parametrize("damage", sorted(MALFORMED))
def test_cli_refuses_a_malformed_result_file_whole(sqlite_url: str, sqlite_centre: LoanCentre, gjj: Any,
                                                   tmp_path: Path, damage: str) -> None:
    data, _record = _good_result_bytes(sqlite_centre.ledger)
    damaged = MALFORMED[damage](data)
    assert damaged != data
    path = tmp_path / "BDC108.txt"
    path.write_bytes(damaged)
    before = head(sqlite_centre.ledger)
    code, out, text = gjj(sqlite_url, "bank", "import", str(path), "--json")
    assert code == 2, text
    problems = out["error"]["problems"]
    assert problems and all(p["line"] >= 1 for p in problems), problems
    assert head(sqlite_centre.ledger) == before
    assert {d.state for d in sqlite_centre.ledger.debits(("SUBMITTED", "COLLECTED"))} == {"SUBMITTED"}


def test_cli_statement_import_reports_bad_lines_and_exits_1(sqlite_url: str, sqlite_centre: LoanCentre, gjj: Any,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "SBDC100.txt"
    path.write_bytes(write_statement(statement(statement_line(1, "50.00", DEDUCTION_ON, "U1", "来款"),
                                               statement_line(2, "-50.00", DEDUCTION_ON, "U2", "202502179999999"))))
    code, _out, text = gjj(sqlite_url, "bank", "import", str(path), "--json")
    assert code == 2 and "--bank" in text
    code, report, text = gjj(sqlite_url, "bank", "import", str(path), "--bank", BANK, "--json")
    assert code == 1, text
    assert [(p["line"], p["status"]) for p in report["problems"]] == [(2, "problem")]
    assert [(s["line"], s["amount"]) for s in report["suspense"]] == [(1, "50.00")]
    assert sqlite_centre.ledger.check_books()["ok"]


def test_bank_reference_text() -> None:
    assert bank_reference("ICBC", date(2025, 2, 17), "50026033") == "ICBC/20250217/50026033"
