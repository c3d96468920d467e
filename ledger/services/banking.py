"""Bank files and real-time bank posts on the ledger: BDC105 export, BDC108 results, statements (BNK-1..6).

The bank adapters (``bank_adapters``) read and write the bytes; this mixin decides what each record
means for the ledger and calls the use cases that already exist (``submit``/``collect_debit``/
``fail_debit`` for card debits, ``receive`` for money in, ``settle_payout`` for money out,
``pay_loan`` for real-time repayments):

- **Export** (OFF-3): the day's CREATED card debits for one bank become one BDC105 batch whose batch
  number is a centre serial (业务流水号), so a statement line for the whole batch carries it (REC-1).
  The batch is recorded under the idempotency key ``debit-export:<bank>:<day>:<n>``; a re-export
  with nothing new returns the day's last batch unchanged, and ``debit_batch(number)`` rebuilds any
  batch's rows exactly.
- **BDC108** (BNK-4): each result line is matched to its instruction by (batch number, 序号) and must
  agree on card number, name and amount; success → COLLECTED (loan paid as of 主机日期), else FAILED by
  the response code.
- **Statements** (SBDC100/BDC113, BNK-4..6): a line is matched by the serial in 备注 to the business
  that carries it; money in that cannot be applied goes to suspense (BNK-5); 冲正标识 Y reverses the
  line it names (BNK-6, COR-1).

Every posting is keyed by its bank reference (bank, 主机日期, 主机流水号), written ``BANK/YYYYMMDD/HOST``
(BNK-2): the same content again is a no-op, other content is refused — also when the reference was
first used by another kind of posting. A file is checked whole by its parser first (BNK-3); then each
line is applied on its own, a line that fails a business check is reported with its line number and
reason, and the rest go through exactly once (a re-import repeats nothing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from dataclasses import field as dataclass_field
from datetime import date, timedelta
from typing import Any, Callable

from bank_adapters.formats import (
    SUCCESS_CODE,
    AmbiguousSerialError,
    DebitBatch,
    OtherBankDebit,
    ResultFile,
    ResultLine,
    SameBankDebit,
    StatementFile,
    StatementLine,
    is_valid_card,
)
from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.documents import CENTRE_SERIAL_SCOPE, BankReceipt, IdempotencyRecord, SerialRef
from ledger.aggregates.errors import IdempotencyConflictError, ValueDateError
from ledger.aggregates.fund_account import FundAccount, bank_account_code
from ledger.aggregates.loan import ACTIVE
from ledger.aggregates.offset import BankDebit, DebitStateError
from ledger.application import NotFoundError, as_str, content_hash
from ledger.money import ZERO, Money, MoneyError
from ledger.policy import PolicyError

DEBIT_BATCHES_PER_DAY_MAX = 99
DEBIT_BATCH_LINES_MAX = 50_000
SERIAL_SKIPS_MAX = 10_000
NOTE_CHARS_MAX = 200  # what staff read beside money held in suspense
DEBIT_MEMO = "公积金贷款扣划"
# A 冲正 line may repeat the 主机流水号 of the line it reverses; money it returns is keyed apart.
REVERSAL_SUFFIX = "-R"
EXPECTED_LINE_ERRORS = (LedgerRuleError, NotFoundError, MoneyError, AmbiguousSerialError, PolicyError)
# BNK-2: the idempotency keys under which each kind of posting records a bank reference.
REFERENCE_KEY_FORMATS = {
    "receipt": "bank-ref:{bank}:{host_date}:{host_serial}",
    "debit-result": "debit-result:{reference}",
    "payout-result": "payout-result:{reference}",
    "loan-payment": "loan-payment:{reference}",
    "reversal": "bank-reversal:{reference}",
}


class BankNotAuthorisedError(LedgerRuleError):
    """A bank may act only on its own loans and debits (its key names it)."""

    rule = "BNK-1"


class BankLineError(LedgerRuleError):
    """A line that parses but fails a business check (BNK-3/BNK-4); it is left out and reported."""

    rule = "BNK-4"


def bank_reference(bank: str, host_on: date, host_serial: str) -> str:
    """BNK-2: (bank, 主机日期, 主机流水号) as one text, ``ICBC/20250217/50026033``."""
    return f"{bank}/{host_on:%Y%m%d}/{host_serial}"


@dataclass
class LineOutcome:
    """What happened to one line of a bank file."""

    line: int
    status: str  # applied | repeat | suspense | deferred | problem
    amount: str
    serial: str | None = None
    reference: str = ""
    message: str = ""
    field: str = ""
    rule: str = ""
    result: dict[str, Any] = dataclass_field(default_factory=dict)


@dataclass
class BankImportReport:
    """The report of one imported file: every line's outcome; problems and suspense listed for staff."""

    kind: str
    bank: str
    lines: list[LineOutcome] = dataclass_field(default_factory=list)
    header: dict[str, Any] = dataclass_field(default_factory=dict)

    def add(self, outcome: LineOutcome) -> None:
        self.lines.append(outcome)

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for outcome in self.lines:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        rows = [asdict(o) for o in self.lines]
        return {"kind": self.kind, "bank": self.bank, **self.header, "lines_read": len(self.lines),
                "counts": counts, "lines": rows,
                "problems": [r for r in rows if r["status"] == "problem"],
                "suspense": [r for r in rows if r["status"] == "suspense"]}


def _debit_line(row: dict[str, Any], bank: str) -> SameBankDebit | OtherBankDebit:
    """One BDC105 line: same-bank form when the card is at the bank the batch goes to (LN-9)."""
    card, amount, memo = row["card"], Money(row["amount"]), f"{row['serial']} {DEBIT_MEMO}"
    if card.get("bank") == bank:
        return SameBankDebit(row["sequence"], amount, card["number"], row["name"], False, memo)
    branch = card.get("branch", "")
    return OtherBankDebit(row["sequence"], amount, card["number"], row["name"], branch, branch, "",
                          card.get("agreement", ""), False, memo)


def debit_batch_file(record: dict[str, Any]) -> DebitBatch:
    """The BDC105 batch of an export record (the same record always gives the same file), in the form banks
    take: detail lines only, the header going in the control record beside the file."""
    return DebitBatch.build(account_number=record["account"], account_name=record["account_name"],
                            project_number=record["batch_number"],
                            records=[_debit_line(row, record["bank"]) for row in record["rows"]],
                            header_line=False)


def _card_problem(debit: BankDebit, bank: str) -> str | None:
    card = debit.card or {}
    if not is_valid_card(card.get("number", "")):
        return "the repayment card number fails its check digit (LN-9)"
    if card.get("bank") != bank and not (len(card.get("branch", "")) == 12 and card.get("agreement")):
        return "a card at another bank needs its 12-digit 联行号 and the tripartite agreement number (LN-9)"
    return None


def _name_problem(debit: BankDebit, encoding: str | None) -> str | None:
    try:
        debit.payer_name.encode(encoding or "utf-8")
    except UnicodeEncodeError:
        return f"the name {debit.payer_name!r} cannot be written in {encoding} (BNK-1); never replaced"
    return None


def _line_problem(number: int, amount: Money, error: Exception, serial: str | None = None,
                  reference: str = "") -> LineOutcome:
    return LineOutcome(number, "problem", str(amount), serial, reference, str(error),
                       getattr(error, "field", "") or "", getattr(error, "rule", "") or type(error).__name__)


def _applied(number: int, amount: Money, result: dict[str, Any], serial: str | None, reference: str,
             status: str | None = None, message: str = "") -> LineOutcome:
    chosen = status or ("repeat" if result.get("repeat") else "applied")
    if status is None and not result.get("repeat") and result.get("suspense", "0.00") not in ("0.00", None):
        chosen = "suspense"
    return LineOutcome(number, chosen, str(amount), serial, reference, message, result=result)


class BankingCommands:
    """Mixin on the ledger application: bank files in and out, and real-time bank posts."""

    # -- BNK-2 across kinds -------------------------------------------------------------
    def check_reference_free(self, bank: str, host_on: date, host_serial: str, kind: str) -> str:
        """The reference text; refused if another kind of posting already used it (BNK-2)."""
        reference = self.reference_of(bank, host_on, host_serial)
        found = self.load_many(self.other_reference_keys(bank, host_on, host_serial, kind))
        if found:
            used_by = next(iter(found.values())).command
            raise IdempotencyConflictError(f"bank reference {reference} was already used by {used_by}",
                                           field="host_reference", rule="BNK-2")
        return reference

    def reference_of(self, bank: str, host_on: date, host_serial: str) -> str:
        if not host_serial:
            raise BankLineError("a bank posting carries its 主机流水号", field="host_reference", rule="BNK-2")
        return bank_reference(bank, host_on, host_serial)

    def other_reference_keys(self, bank: str, host_on: date, host_serial: str, kind: str) -> list[Any]:
        """The idempotency ids the same bank reference would have as another kind of posting (BNK-2)."""
        names = {"bank": bank, "host_date": f"{host_on:%Y%m%d}", "host_serial": host_serial,
                 "reference": bank_reference(bank, host_on, host_serial)}
        return [IdempotencyRecord.create_id(fmt.format(**names))
                for name, fmt in REFERENCE_KEY_FORMATS.items() if name != kind]

    # -- export (BDC105) ------------------------------------------------------------------
    def export_debits(self, bank: str, on: date, encoding: str | None = None) -> dict[str, Any]:
        """The day's batch for ``bank``: its CREATED debits submitted under a new batch serial, or the
        day's last batch again when nothing new is waiting (idempotent). A debit whose card or name
        cannot go into the file (``encoding``: the bank's, None for CSV) is left out and listed."""
        earlier = self.debit_batches(bank, on)
        waiting = [d for d in self.debits(("CREATED",), bank=bank) if d.attempts[-1]["created_on"] <= on]
        problems = {d.serial: p for d in waiting if (p := _card_problem(d, bank) or _name_problem(d, encoding))}
        ready = [d for d in waiting if d.serial not in problems][:DEBIT_BATCH_LINES_MAX]
        left_out = [{"serial": s, "message": m} for s, m in sorted(problems.items())]
        if not ready:
            last = dict(earlier[-1]) if earlier else {"bank": bank, "on": on.isoformat(), "rows": []}
            return {**last, "repeat": bool(earlier), "left_out": left_out}
        if len(earlier) >= DEBIT_BATCHES_PER_DAY_MAX:
            raise LedgerRuleError(f"at most {DEBIT_BATCHES_PER_DAY_MAX} batches a day", field="on", rule="OFF-3")
        record = self._submit_batch(bank, on, len(earlier) + 1, [d.id for d in ready])
        return {**record, "repeat": bool(record.get("repeat")), "left_out": left_out}

    def _submit_batch(self, bank: str, on: date, index: int, debit_ids: list[Any]) -> dict[str, Any]:
        policy = self.policy.at(on).bank

        def body():
            fresh = sorted((d for d in self.load_many(debit_ids).values() if d.state == "CREATED"),
                           key=lambda d: d.serial)
            if not fresh:
                raise DebitStateError("the debits were submitted meanwhile; export again", field="bank")
            sequence, batch_number = self._free_serial(on)
            rows = []
            for number, debit in enumerate(fresh, start=1):
                debit.submit(on=on, batch_number=batch_number, sequence=number)
                rows.append({"sequence": number, "serial": debit.serial, "amount": str(debit.amount),
                             "card": dict(debit.card), "name": debit.payer_name, "loan_no": debit.loan_no})
            record = {"bank": bank, "on": on.isoformat(), "index": index, "batch_number": batch_number,
                      "account": policy.centre_account, "account_name": policy.centre_account_name,
                      "count": len(rows), "total": str(Money.sum(Money(r["amount"]) for r in rows)), "rows": rows}
            key_id = IdempotencyRecord.create_id(_export_key(bank, on, index))
            ref = SerialRef(serial=batch_number, kind="debit-batch", target_id=key_id,
                            detail={"bank": bank, "on": on.isoformat()})
            return record, [*fresh, sequence, ref]
        return self.execute("export-debits", _export_key(bank, on, index), {"bank": bank, "on": on.isoformat()},
                            body)

    def _free_serial(self, on: date) -> tuple[Any, str]:
        """A centre serial no business holds yet: skips serials another scope handed out (see the report
        on ``take_serials("debit", ...)``: SerialRef is keyed by the serial alone)."""
        sequence, (serial,) = self.take_serials(CENTRE_SERIAL_SCOPE, on)
        for _attempt in range(SERIAL_SKIPS_MAX):
            if self.find(SerialRef.create_id(serial)) is None:
                return sequence, serial
            (serial,) = sequence.take(1)
        raise DebitStateError(f"no free serial on {on} after {SERIAL_SKIPS_MAX} tries", field="on", rule="BNK-2")

    def debit_batches(self, bank: str, on: date) -> list[dict[str, Any]]:
        """The batches exported to ``bank`` on ``on``, in order."""
        keys = [IdempotencyRecord.create_id(_export_key(bank, on, i)) for i in range(1, DEBIT_BATCHES_PER_DAY_MAX + 1)]
        found = self.load_many(keys)
        return [dict(found[k].result) for k in keys if k in found]

    def debit_batch(self, batch_number: str) -> dict[str, Any]:
        """The export record of a batch, by its batch number (a centre serial)."""
        ref = self.find(SerialRef.create_id(batch_number))
        if ref is None or ref.kind != "debit-batch":
            raise NotFoundError(f"no debit batch {batch_number}", "batch_number")
        return dict(self.repository.get(ref.target_id).result)

    # -- BDC108 results ---------------------------------------------------------------------
    def import_debit_results(self, results: ResultFile, first_detail_line: int = 2,
                             bank: str | None = None) -> dict[str, Any]:
        """BNK-4: each result line against its instruction; collected or failed, exactly once. A batch the
        ledger does not know is still read (BNK-5): see :meth:`import_unknown_batch_results`."""
        try:
            record = self.debit_batch(results.summary.batch_number)
        except NotFoundError:
            return self.import_unknown_batch_results(results, first_detail_line, bank)
        if bank and bank != record["bank"]:
            raise BankNotAuthorisedError(f"batch {record['batch_number']} was sent to {record['bank']}, not {bank}",
                                         field="batch_number")
        report = BankImportReport("BDC108", record["bank"], header={"batch_number": record["batch_number"]})
        for offset, line in enumerate(results.lines):
            report.add(self._apply_result_line(record, line, first_detail_line + offset, results.summary.batch_on))
        return report.as_dict()

    def _apply_result_line(self, record: dict[str, Any], line: ResultLine, number: int,
                           batch_on: date) -> LineOutcome:
        row, reference = None, ""
        try:
            row = _instruction_for(record, line)
            host_on = line.host_on or batch_on
            if line.succeeded:
                if line.host_on is None:
                    raise BankLineError("a collection carries its 主机日期", field="host_on", rule="OFF-3")
                reference = self.check_reference_free(record["bank"], host_on, line.host_reference, "debit-result")
                already = self._collected_elsewhere(row["serial"], reference, line.amount)
                if already is not None:
                    return LineOutcome(number, "repeat", str(line.amount), row["serial"], already,
                                       f"already collected under {already}")
                result = self.collect_debit(row["serial"], host_on, reference, line.amount)
            else:
                reference = (self.check_reference_free(record["bank"], host_on, line.host_reference, "debit-result")
                             if line.host_reference else "")
                result = self.fail_debit(row["serial"], host_on, line.response_code, line.response_message, reference)
        except EXPECTED_LINE_ERRORS as error:
            return _line_problem(number, line.amount, error, row["serial"] if row else None, reference)
        return _applied(number, line.amount, result, row["serial"], reference)

    def import_unknown_batch_results(self, results: ResultFile, first_detail_line: int, bank: str | None
                                     ) -> dict[str, Any]:
        """BNK-5: a result file for a batch the ledger never sent. Money the bank reports collected is never
        refused: each such line goes to suspense (Dr 1001 / Cr 2102) under its bank reference, listed for staff
        (``gjj books suspense``); each failed line is reported (nothing was taken). The file itself was
        checked whole by its parser (summary against lines, BNK-3)."""
        number = results.summary.batch_number
        if not bank:
            raise BankLineError(f"batch {number} is unknown to the ledger: name the bank that sent the file so "
                                "the money it collected is held under its bank reference", field="bank", rule="BNK-5")
        report = BankImportReport("BDC108", bank, header={"batch_number": number, "batch_known": False})
        for offset, line in enumerate(results.lines):
            report.add(self._unknown_batch_line(bank, number, line, first_detail_line + offset,
                                                results.summary.batch_on))
        return report.as_dict()

    def _unknown_batch_line(self, bank: str, batch_number: str, line: ResultLine, number: int,
                            batch_on: date) -> LineOutcome:
        reference = ""
        try:
            if not line.succeeded:
                raise BankLineError(f"batch {batch_number} is unknown to the ledger; the bank reports "
                                    f"{line.response_code} {line.response_message}: nothing was collected",
                                    field="batch_number", rule="BNK-4")
            host_on = line.host_on or batch_on
            reference = self.check_reference_free(bank, host_on, line.host_reference, "receipt")
            note = (f"BDC108 batch {batch_number} 序号 {line.sequence} card {line.payer_account} "
                    f"{line.payer_name}: batch unknown")[:NOTE_CHARS_MAX]
            result = self.hold_in_suspense(bank, host_on, line.host_reference, line.amount, note)
        except EXPECTED_LINE_ERRORS as error:
            return _line_problem(number, line.amount, error, None, reference)
        return _applied(number, line.amount, result, None, reference,
                        message=f"batch {batch_number} is unknown to the ledger: held in suspense for staff")

    def hold_in_suspense(self, bank: str, host_on: date, host_serial: str, amount: Money, note: str,
                         bank_account: str | None = None) -> dict[str, Any]:
        """BNK-5: money a bank has taken that nothing here can apply, held in suspense (Dr 1001 / Cr 2102)
        under its bank reference with a note for staff; the same reference and content again is a repeat."""
        account = bank_account or self.centre_bank_account
        host_date = f"{host_on:%Y%m%d}"
        content = {"bank": bank, "host_date": host_date, "host_serial": host_serial, "account": account,
                   "amount": str(amount), "value_date": host_on.isoformat(), "note": note}
        key = REFERENCE_KEY_FORMATS["receipt"].format(bank=bank, host_date=host_date, host_serial=host_serial)

        def body():
            self.check_value_date(host_on, "host_on")
            receipt = BankReceipt.record(bank, host_date, host_serial, account, amount, host_on, "",
                                         content_hash(content), ZERO, note)
            return {"bank_reference": receipt.reference, "amount": str(amount), "applied": "0.00",
                    "suspense": str(amount), "note": note}, [receipt]
        return self.execute("hold-in-suspense", key, content, body)

    def _collected_elsewhere(self, serial: str, reference: str, amount: Money) -> str | None:
        """BNK-4: the money is posted once; a second report of the same collection names the first."""
        debit = self.debit_by_serial(serial)
        collected = debit.collected or {}
        if debit.state == "COLLECTED" and debit.serial == serial and collected.get("amount") == amount \
                and collected.get("bank_reference") != reference:
            return collected["bank_reference"]
        return None

    # -- statements (SBDC100/BDC113) ------------------------------------------------------------
    def import_statement(self, bank: str, statement: StatementFile, first_line: int = 1) -> dict[str, Any]:
        """BNK-4..6: each movement posted once by the business its serial names; the rest to suspense."""
        report = BankImportReport("SBDC100", bank)
        for offset, line in enumerate(statement.lines):
            report.add(self._apply_statement_line(bank, line, first_line + offset))
        return report.as_dict()

    def _apply_statement_line(self, bank: str, line: StatementLine, number: int) -> LineOutcome:
        serial, reference = None, ""
        try:
            if line.account_number not in self.centre_bank_accounts():
                raise BankLineError(f"{line.account_number} is not one of the centre's bank accounts",
                                    field="account_number")
            if line.amount.is_zero:
                raise BankLineError("a movement of 0.00", field="amount", rule="MNY-1")
            serial = line.serial
            handler = self._statement_handler(line, serial)
            return handler(bank, line, number, serial)
        except EXPECTED_LINE_ERRORS as error:
            return _line_problem(number, line.amount, error, serial, reference)

    def centre_bank_accounts(self) -> set[str]:
        return {self.centre_bank_account}

    def _statement_handler(self, line: StatementLine, serial: str | None) -> Callable[..., LineOutcome]:
        if line.reversal:
            return self._reverse_line
        kind = self._serial_kind(serial)
        if line.amount.is_negative:
            return self._money_out if kind == "payout" else self._unknown_money_out
        return {"remittance": self._money_in, "debit": self._debit_money_in,
                "debit-batch": self._batch_money_in}.get(kind, self._money_in)

    def _serial_kind(self, serial: str | None) -> str | None:
        ref = self.find(SerialRef.create_id(serial)) if serial else None
        return ref.kind if ref is not None else None

    def _money_in(self, bank: str, line: StatementLine, number: int, serial: str | None,
                  note: str = "") -> LineOutcome:
        """A remittance paid by its serial, or money that cannot be applied: suspense (BNK-5)."""
        reference = self.check_reference_free(bank, line.transaction_on, line.host_reference, "receipt")
        result = self.receive(bank, f"{line.transaction_on:%Y%m%d}", line.host_reference, line.account_number,
                              str(line.amount), line.transaction_on, serial or "")
        if not note and result.get("suspense") not in (None, "0.00"):
            note = "no pending business with this serial" if serial else "no serial in 备注"
        return _applied(number, line.amount, result, serial, reference, message=note)

    def _debit_money_in(self, bank: str, line: StatementLine, number: int, serial: str | None) -> LineOutcome:
        """A card collection on the statement: collected now, already collected, or suspense."""
        debit = self.debit_by_serial(serial)
        collected = debit.collected or {}
        if debit.state == "COLLECTED" and debit.serial == serial and collected.get("amount") == line.amount:
            return LineOutcome(number, "repeat", str(line.amount), serial, collected["bank_reference"],
                               "already collected by its result file")
        if debit.state == "SUBMITTED" and debit.serial == serial and debit.amount == line.amount:
            reference = self.check_reference_free(bank, line.transaction_on, line.host_reference, "debit-result")
            result = self.collect_debit(serial, line.transaction_on, reference, line.amount)
            return _applied(number, line.amount, result, serial, reference)
        return self._money_in(bank, line, number, serial,
                              f"debit {serial} is {debit.state} for {debit.amount}: money held in suspense")

    def _batch_money_in(self, bank: str, line: StatementLine, number: int, serial: str | None) -> LineOutcome:
        record = self.debit_batch(serial)
        return LineOutcome(number, "deferred", str(line.amount), serial, "",
                           f"the total of debit batch {serial} ({record['count']} lines): "
                           "posted line by line from its BDC108 result file")

    def _money_out(self, bank: str, line: StatementLine, number: int, serial: str | None) -> LineOutcome:
        """A payment the centre instructed: paid (Dr 2101 / Cr 1001) on the transaction date."""
        payout = self._payout_by_serial(serial)
        if payout.amount != -line.amount:
            raise BankLineError(f"the bank paid {-line.amount}; payout {serial} is {payout.amount}", field="amount")
        reference = self.check_reference_free(bank, line.transaction_on, line.host_reference, "payout-result")
        result = self.settle_payout(serial, True, line.transaction_on, reference)
        return _applied(number, line.amount, result, serial, reference)

    def _unknown_money_out(self, bank: str, line: StatementLine, number: int, serial: str | None) -> LineOutcome:
        raise BankLineError("money left the account with no payout instruction of this serial"
                            if serial else "money left the account with no serial in 备注", field="remark")

    # -- reversals (BNK-6) -----------------------------------------------------------------------
    def _reverse_line(self, bank: str, line: StatementLine, number: int, serial: str | None) -> LineOutcome:
        """冲正 Y: the line it names is reversed by mirroring what it posted (COR-1)."""
        if line.amount > Money("0.00"):
            returned = replace(line, host_reference=f"{line.host_reference}{REVERSAL_SUFFIX}")
            return self._money_in(bank, returned, number, serial, "a bank reversal returned money: held in suspense")
        reference = bank_reference(bank, line.transaction_on, line.host_reference or "-")
        key = REFERENCE_KEY_FORMATS["reversal"].format(reference=f"{reference}/{serial or ''}")
        content = {"amount": str(line.amount), "serial": serial or "", "host": line.host_reference}

        def body():
            self.check_value_date(line.transaction_on, "transaction_on")
            touched, detail = self._reversal_of(bank, line, serial)
            return {"reversed": detail, "amount": str(-line.amount)}, touched
        result = self.execute("bank-reversal", key, content, body)
        return _applied(number, line.amount, result, serial, reference)

    def _reversal_of(self, bank: str, line: StatementLine, serial: str | None) -> tuple[list[Any], str]:
        amount, kind = -line.amount, self._serial_kind(serial)
        if kind == "debit":
            return self._reverse_collection(serial, amount, line.transaction_on)
        if kind == "remittance":
            return self._reverse_remittance(serial, amount, line.transaction_on)
        receipt = self._receipt_named(bank, line)
        if receipt is None or receipt.suspense != amount or receipt.applied != Money("0.00"):
            raise BankLineError("冲正 names no line this ledger posted with this serial and amount",
                                field="reversal", rule="BNK-6")
        receipt.release(amount, receipt.value_date, f"bank-reversal:{line.host_reference}",
                        bank_account_code(receipt.bank_account))
        return [receipt], receipt.reference

    def _receipt_named(self, bank: str, line: StatementLine) -> BankReceipt | None:
        """Money held in suspense under the same 主机流水号, on the reversal's date or up to k days before."""
        days = self.policy.at(line.transaction_on).time.value_date_backdate_days_max
        ids = [BankReceipt.create_id(bank, f"{line.transaction_on - timedelta(days=n):%Y%m%d}", line.host_reference)
               for n in range(days + 1)]
        found = self.load_many(ids)
        return next((found[i] for i in ids if i in found), None)

    def _reverse_collection(self, serial: str, amount: Money, on: date) -> tuple[list[Any], str]:
        debit = self.debit_by_serial(serial)
        collected = debit.collected or {}
        if debit.state != "COLLECTED" or collected.get("amount") != amount:
            raise BankLineError(f"debit {serial} holds no collection of {amount} to reverse", field="reversal",
                                rule="BNK-6")
        loan = self.loan(debit.loan_no)
        payment = loan.payment_by_reference(collected["bank_reference"])
        if loan.state != ACTIVE or payment is None:
            raise BankLineError(f"the collection of {serial} cannot be reversed on loan {loan.loan_no} "
                                f"({loan.state}); handle it by hand", field="reversal", rule="BNK-6")
        loan.reverse_payment(payment["allocation"], on, f"bank reversal of {serial}")
        return [loan], collected["bank_reference"]

    def _reverse_remittance(self, serial: str, amount: Money, on: date) -> tuple[list[Any], str]:
        document = self.find(self.find(SerialRef.create_id(serial)).target_id)
        received = document.received or {}
        receipt = self.find(BankReceipt.create_id(*received.get("bank_reference", "//").split("/", 2)))
        if receipt is None or receipt.amount != amount:
            raise BankLineError(f"remittance {serial} holds no bank receipt of {amount} to reverse",
                                field="reversal", rule="BNK-6")
        accounts = self.load_many(FundAccount.create_id(line[0]) for line in document.lines)
        touched: list[Any] = []
        for index, document_line in enumerate(document.lines, start=1):
            account, posting_id = accounts.get(FundAccount.create_id(document_line[0])), f"{serial}:{index}"
            original = account.posting(posting_id) if account is not None else None
            if original is None:
                continue
            adjustment = self._interest_adjustment(account, posting_id, original)
            account.reverse(posting_id, f"rev:{posting_id}", on, f"bank reversal of {serial}", adjustment)
            touched.append(account)
        document.mark_receipt_reversed(on=on, bank_reference=receipt.reference, reason=f"bank reversal of {serial}")
        touched.append(document)
        if not receipt.suspense.is_zero:
            receipt.release(receipt.suspense, receipt.value_date, "bank-reversal",
                            bank_account_code(receipt.bank_account))
            touched.append(receipt)
        return touched, receipt.reference

    # -- real-time posts (HTTP API) -----------------------------------------------------------------
    def check_host_date(self, host_on: date) -> date:
        """MNY-4 for a bank's 主机日期, checked against today's policy (any date at all may arrive)."""
        today = self.today()
        limit = self.policy.at(today).time.value_date_backdate_days_max
        if host_on > today or (today - host_on).days > limit:
            raise ValueDateError(f"主机日期 {host_on} is not within {limit} days up to {today}", field="host_date")
        return self.check_value_date(host_on, "host_date")

    def check_bank_owns_loan(self, bank: str, loan_no: str) -> Any:
        loan = self.loan(loan_no)
        if loan.bank != bank:
            raise BankNotAuthorisedError(f"loan {loan_no} is not serviced by {bank}", field="loan_no")
        return loan

    def bank_repayment(self, bank: str, loan_no: str, amount: str, host_on: date, host_serial: str) -> dict[str, Any]:
        """A repayment a bank collected (source api), paid as of its host date: ``pay_loan``'s key and
        content, with the ownership check on the copy it pays (one load). A loan no longer active
        cannot take it: the money goes to suspense with its bank reference (BNK-5)."""
        command = self.repayment_command(bank, loan_no, amount, host_on, host_serial)
        return self.execute(command.name, command.key, command.content, command.body)

    def repayment_command(self, bank: str, loan_no: str, amount: str, host_on: date, host_serial: str) -> Any:
        """``bank_repayment`` as a command (checked, not run): the HTTP API commits many in one transaction
        (``ledger.command_batch``)."""
        from ledger.aggregates.loan import Loan
        from ledger.command_batch import Command

        money = Money.parse(amount, "amount", positive=True)
        self.check_host_date(host_on)
        reference = self.reference_of(bank, host_on, host_serial)
        others = self.other_reference_keys(bank, host_on, host_serial, "loan-payment")

        def body():
            self.check_reference_free(bank, host_on, host_serial, "loan-payment")  # read with the batch's prefetch
            loan = self.check_bank_owns_loan(bank, loan_no)
            self.check_repayment_ceiling(loan, money, host_on)
            if loan.state != ACTIVE:
                receipt = BankReceipt.record(bank, f"{host_on:%Y%m%d}", host_serial, self.centre_bank_account, money,
                                             host_on, "", "", ZERO, f"{loan.state} loan {loan_no}")
                return {"loan_no": loan_no, "amount": str(money), "state": loan.state, "applied": "0.00",
                        "suspense": str(money)}, [receipt]
            figures = loan.pay(money, host_on, "api", reference, self.centre_bank_account)
            return {"loan_no": loan_no, "amount": str(money), **as_str(figures)}, [loan]
        content = {"loan": loan_no, "amount": str(money), "on": host_on.isoformat(), "source": "api"}
        key = f"loan-payment:{reference}"
        return Command("pay-loan", key, content, body, (Loan.create_id(loan_no), IdempotencyRecord.create_id(key),
                                                        *others))

    def bank_debit_result(self, bank: str, serial: str, code: str, message: str, host_on: date, host_serial: str,
                          amount: str | None = None) -> dict[str, Any]:
        """A card debit's result posted in real time: the same rules as a BDC108 line (OFF-3, BNK-4)."""
        debit = self.debit_by_serial(serial)
        if debit.bank != bank:
            raise BankNotAuthorisedError(f"debit {serial} was sent to {debit.bank}", field="serial")
        self.check_host_date(host_on)
        reference = self.check_reference_free(bank, host_on, host_serial, "debit-result")
        if code != SUCCESS_CODE:
            return self.fail_debit(serial, host_on, code, message, reference)
        money = Money.parse(amount, "amount", positive=True) if amount is not None else debit.amount
        return self.collect_debit(serial, host_on, reference, money)

    def bank_may_read_account(self, bank: str, account_no: str) -> FundAccount:
        """A bank reads a fund account only if it services a loan of that member."""
        account = self.account(account_no)
        member = self.find(account.member_id)
        loan_ids = list((getattr(member, "loan_marks", None) or {}).keys())
        loans = self.load_many(_as_uuid(i) for i in loan_ids)
        if not any(getattr(loan, "bank", None) == bank for loan in loans.values()):
            raise BankNotAuthorisedError(f"account {account_no} has no loan serviced by {bank}", field="account_no")
        return account


def _instruction_for(record: dict[str, Any], line: ResultLine) -> dict[str, Any]:
    """BNK-4: the instruction (batch, 序号) names must agree on card, name and amount."""
    rows = record["rows"]
    if not 1 <= line.sequence <= len(rows):
        raise BankLineError(f"batch {record['batch_number']} has no 序号 {line.sequence}", field="sequence")
    row = rows[line.sequence - 1]
    checks = (("payer_account", line.payer_account, row["card"]["number"]),
              ("payer_name", line.payer_name, row["name"]), ("amount", line.amount, Money(row["amount"])))
    for name, got, expected in checks:
        if got != expected:
            raise BankLineError(f"{got} differs from the instruction's {expected}", field=name)
    return row


def _export_key(bank: str, on: date, index: int) -> str:
    return f"debit-export:{bank}:{on.isoformat()}:{index}"


def _as_uuid(text: Any) -> Any:
    from uuid import UUID

    return text if isinstance(text, UUID) else UUID(str(text))


_BANKING_CLASSES: dict[type, type] = {}


def with_banking(ledger_class: type) -> type:
    """``ledger_class`` with this mixin (unchanged once ``ledger.app.Ledger`` lists it itself)."""
    if issubclass(ledger_class, BankingCommands):
        return ledger_class
    if ledger_class not in _BANKING_CLASSES:
        _BANKING_CLASSES[ledger_class] = type("BankingLedger", (BankingCommands, ledger_class), {})
    return _BANKING_CLASSES[ledger_class]
