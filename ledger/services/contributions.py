"""Remittances (汇缴), back-payments (补缴), bank receipts and suspense (CON-1..4, GL-1).

A remittance document is registered first (its lines checked against each
member's dated base and the employer's dated ratios); members are credited
only when the money arrives, value-dated on arrival, matched by the
document's serial and total. Money with no matching document, or beyond its
total, goes to suspense (2102) until allocated or refunded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable
from uuid import UUID

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.documents import CENTRE_SERIAL_SCOPE, BankReceipt, RemittanceDocument, SerialRef
from ledger.aggregates.errors import (
    ContributionMismatchError,
    DocumentStateError,
    DocumentTotalError,
    PeriodAlreadyCreditedError,
    ValueDateError,
)
from ledger.aggregates.fund_account import GL_CLEARING, GL_FUND, GL_SUSPENSE, FundAccount
from ledger.aggregates.parties import Employer, check_period
from ledger.application import NotFoundError, chunked, gc_paused
from ledger.input_files import CsvFile
from ledger.dates import parse_host_date
from ledger.money import ZERO, Money, MoneyError
from ledger.services.accounts import share

CSV_FIELDS = ("employer", "period", "kind", "document_number", "account_no", "base", "employer_amount",
              "employee_amount")
DOCUMENT_LINES_MAX = 50_000
IMPORT_FILE_LINES_MAX = 2_000_000
RECEIPT_SAVE_BATCH = 1_000
IMPORT_BATCH_LINES = 5_000  # lines of whole documents registered in one transaction
KINDS = ("remittance", "back-payment")


@dataclass
class LineProblem:
    line: int
    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "rule": self.rule, "message": self.message}


@dataclass
class RemittanceLine:
    line: int
    account_no: str
    base: Money
    employer_amount: Money
    employee_amount: Money


@dataclass
class ImportReport:
    documents: list[dict[str, Any]] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    lines_read: int = 0

    def as_dict(self) -> dict[str, Any]:
        accepted = sum(d["accepted"] for d in self.documents if not d.get("repeat"))
        return {"lines_read": self.lines_read, "documents": self.documents, "lines_accepted": accepted,
                "problems": [p.as_dict() for p in self.problems]}


def _csv_amount(row: dict[str, str], name: str) -> Money:
    """The one place this reader turns a CSV field into money (MNY-1)."""
    return Money.parse(row[name], name, positive=(name == "base"))


AMOUNT_FIELDS = ("base", "employer_amount", "employee_amount")


class _RowParser:
    """Turns CSV rows into lines, once per distinct text: a list repeats the same periods, kinds and
    amounts on thousands of lines, and Money is immutable, so each distinct (field, text) is parsed and
    checked once per file (a text that fails is parsed again each time, to report each line)."""

    def __init__(self) -> None:
        self.amounts: dict[tuple[str, str], Money] = {}
        self.periods: set[str] = set()

    def amount(self, row: dict[str, str], name: str) -> Money:
        text = row[name]
        found = self.amounts.get((name, text))
        if found is None:
            found = self.amounts[(name, text)] = _csv_amount(row, name)
        return found

    def parse(self, number: int, row: dict[str, str], problems: list[LineProblem]) -> tuple[tuple, RemittanceLine] | None:
        for name in CSV_FIELDS:
            value = row.get(name)
            if not value or not value.strip():
                problems.append(LineProblem(number, name, "CON-4", "required field is empty"))
                return None
        period, kind = row["period"].strip(), row["kind"].strip()
        try:
            if period not in self.periods:
                check_period(period)
                self.periods.add(period)
            if kind not in KINDS:
                raise LedgerRuleError(f"kind is one of {KINDS}", field="kind", rule="CON-2")
            amounts = [self.amount(row, name) for name in AMOUNT_FIELDS]
        except MoneyError as exc:
            problems.append(LineProblem(number, exc.field, exc.rule.split()[0], str(exc)))
            return None
        except LedgerRuleError as exc:
            problems.append(LineProblem(number, exc.field or "period", exc.rule, str(exc)))
            return None
        key = (row["employer"].strip().upper(), period, kind, row["document_number"].strip())
        return key, RemittanceLine(number, row["account_no"].strip(), *amounts)


def _parse_csv_row(number: int, row: dict[str, str], problems: list[LineProblem]) -> tuple[tuple, RemittanceLine] | None:
    return _RowParser().parse(number, row, problems)


def read_remittance_csv(path: Path, problems: list[LineProblem]) -> tuple[dict[tuple, list[RemittanceLine]], int]:
    """Group the CSV (清册) lines by document key; lines that break a business rule become problems. The
    file is checked whole first (BNK-3): not UTF-8, a line with more or fewer fields than the header, an
    oversized field refuse it (InputFileError) before anything is applied."""
    documents: dict[tuple, list[RemittanceLine]] = {}
    count = 0
    parser = _RowParser()
    for number, row in CsvFile(path, CSV_FIELDS, IMPORT_FILE_LINES_MAX).rows():
        count += 1
        parsed = parser.parse(number, row, problems)
        if parsed is not None:
            key, line = parsed
            lines = documents.get(key)
            if lines is None:
                lines = documents[key] = []
            lines.append(line)
    return documents, count


@dataclass
class _DocumentRules:
    """What every line of one document is checked against, worked out once per document: the policy's
    line ceiling and share rounding for the period, the employer's ratios, and the shares of each base."""

    period: str
    kind: str
    employer: Employer
    ceiling: Money
    limits: Any
    rounding: Any
    ratios: tuple[Any, Any] | None
    shares: dict[Money, tuple[Money, Money]] = field(default_factory=dict)

    @classmethod
    def of(cls, app: Any, employer: Employer, period: str, kind: str) -> "_DocumentRules":
        rules = app.policy.at(date(int(period[:4]), int(period[5:]), 1))
        return cls(period, kind, employer, rules.limits.ceiling("remittance_line"), rules.limits,
                   rules.contribution.share_rounding, employer.ratios_for(period))

    def expected(self, base: Money) -> tuple[Money, Money]:
        found = self.shares.get(base)
        if found is None:
            assert self.ratios is not None
            found = self.shares[base] = (share(base, self.ratios[0], self.rounding),
                                         share(base, self.ratios[1], self.rounding))
        return found


class ContributionCommands:
    """Mixin on the ledger application: remittance documents and the money that pays them."""

    def check_line(self, employer: Employer, period: str, kind: str, line: RemittanceLine,
                   account: FundAccount | None, rules: _DocumentRules | None = None) -> LineProblem | None:
        """CON-1/CON-2/ACC-2: the line agrees with the member's dated base and ratios (``rules``: the
        document's, worked out once for all its lines)."""
        rules = rules or _DocumentRules.of(self, employer, period, kind)
        ceiling = self._line_ceiling_problem(rules, line)
        if ceiling is not None:
            return ceiling
        if not isinstance(account, FundAccount):
            return LineProblem(line.line, "account_no", "ACC-1", f"no fund account {line.account_no}")
        if account.employer_id != employer.id:
            return LineProblem(line.line, "account_no", "EMP-1", "the member does not belong to this employer")
        try:
            account.check_can_contribute(period, kind)
        except LedgerRuleError as exc:
            return LineProblem(line.line, "account_no", exc.rule, str(exc))
        base, ratios = account.base_for(period), rules.ratios
        if base is None or ratios is None:
            return LineProblem(line.line, "base", "CON-1", f"no base or ratios on record for {period}")
        if line.base != base:
            return LineProblem(line.line, "base", "CON-1", f"base {line.base} differs from the record {base}")
        return self._check_amounts(account, period, kind, line, rules.expected(base))

    def _line_ceiling_problem(self, rules: _DocumentRules, line: RemittanceLine) -> LineProblem | None:
        """Issue 16: each share of a line within the policy's remittance-line ceiling (⚙ limits)."""
        for name in ("employer_amount", "employee_amount"):
            amount = getattr(line, name)
            if amount > rules.ceiling:
                try:
                    rules.limits.check("remittance_line", amount, name)
                except MoneyError as exc:
                    return LineProblem(line.line, name, exc.rule_id, exc.message)
        return None

    def _check_amounts(self, account: FundAccount, period: str, kind: str, line: RemittanceLine,
                       expected: tuple[Money, Money]) -> LineProblem | None:
        if kind == "remittance":
            if (line.employer_amount, line.employee_amount) != expected:
                return LineProblem(line.line, "employer_amount", "CON-1",
                                   f"shares {line.employer_amount}/{line.employee_amount} differ from "
                                   f"round(base × ratio) = {expected[0]}/{expected[1]}")
            if "remittance" in account.credited_kinds(period):
                return LineProblem(line.line, "period", "CON-2", f"period {period} is already credited")
            return None
        room = expected[0] + expected[1] - account.credited_total(period)
        if line.employer_amount + line.employee_amount > room:
            return LineProblem(line.line, "employer_amount", "CON-2",
                               f"back-payment exceeds what base and ratios give for {period} (room {room.max(ZERO)})")
        return None

    def register_remittance(self, employer_code: str, period: str, kind: str, document_number: str,
                            lines: list[RemittanceLine], registered_on: date,
                            declared_total: Money | None = None, declared_count: int | None = None) -> dict[str, Any]:
        """CON-4: register a document; a wrong total is refused whole, a bad line is left out."""
        check_period(period)
        if len(lines) > DOCUMENT_LINES_MAX:
            raise DocumentTotalError(f"a document has at most {DOCUMENT_LINES_MAX} lines", field="lines")
        submitted = Money.sum(l.employer_amount + l.employee_amount for l in lines)
        if declared_total is not None and declared_total != submitted:
            raise DocumentTotalError(f"declared total {declared_total} ≠ Σ lines {submitted}", field="total")
        if declared_count is not None and declared_count != len(lines):
            raise DocumentTotalError(f"declared count {declared_count} ≠ {len(lines)} lines", field="count")
        (outcome,) = self.register_remittances([((employer_code, period, kind, document_number), lines)],
                                               registered_on)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def register_remittances(self, documents: list[tuple[tuple[str, str, str, str], list[RemittanceLine]]],
                             registered_on: date) -> list[dict[str, Any] | BaseException]:
        """CON-4 for several documents in one transaction (remittance import): for each, its result, or the
        refusal (LedgerRuleError, NotFoundError) that left it out whole. Each document is still all or
        nothing and exactly once: its id is derived from (employer, period, kind, number), a document
        already registered with the same lines is a repeat (nothing applied), with other lines refused.

        Per batch, not per line: the documents already registered are read in one statement (a re-import
        loads no account), the accounts of all other lines in a few, each document's policy, ratios and
        shares are worked out once, and one serial block and one save cover the batch."""
        def body():
            outcomes: list[dict[str, Any] | BaseException | None] = [None] * len(documents)
            employers: dict[str, Employer | BaseException] = {}
            doc_ids: list[UUID | None] = []
            for index, ((employer_code, period, kind, number), lines) in enumerate(documents):
                if len(lines) > DOCUMENT_LINES_MAX:
                    outcomes[index] = DocumentTotalError(f"a document has at most {DOCUMENT_LINES_MAX} lines",
                                                         field="lines")
                    doc_ids.append(None)
                    continue
                code = employer_code.upper()
                employer = employers.get(code)
                if employer is None:
                    try:
                        employer = employers[code] = self.employer(employer_code)
                    except (LedgerRuleError, NotFoundError) as exc:
                        employer = employers[code] = exc
                if isinstance(employer, BaseException):
                    outcomes[index] = employer
                    doc_ids.append(None)
                    continue
                doc_ids.append(RemittanceDocument.create_id(employer.credit_code, period, kind, number))
            registered = self.load_many(i for i in doc_ids if i is not None)
            todo: list[int] = []
            for index, ((_code, _period, _kind, _number), lines) in enumerate(documents):
                existing = registered.get(doc_ids[index]) if doc_ids[index] is not None else None
                if existing is None:
                    if outcomes[index] is None:
                        todo.append(index)
                    continue
                try:
                    outcomes[index] = self._repeat_document(existing, _lines_digest(lines), [])
                except LedgerRuleError as exc:
                    outcomes[index] = exc
            account_ids = {index: [FundAccount.create_id(l.account_no) for l in documents[index][1]]
                           for index in todo}
            accounts = self.load_many(i for ids in account_ids.values() for i in ids)
            made: list[tuple[int, list[RemittanceLine], list[LineProblem]]] = []
            for index in todo:
                (_code, period, kind, number), lines = documents[index]
                employer = employers[_code.upper()]
                problems = self._check_document(employer, period, kind, lines, account_ids[index], accounts)
                bad = {p.line for p in problems}
                good = [l for l in lines if l.line not in bad]
                if not good:
                    outcomes[index] = _document_result(None, problems, 0)
                    continue
                made.append((index, good, problems))
            touched: list[Any] = []
            if made:
                sequence, serials = self.take_serials(CENTRE_SERIAL_SCOPE, registered_on, len(made))
                for (index, good, problems), serial in zip(made, serials):
                    (_code, period, kind, number), lines = documents[index]
                    employer = employers[_code.upper()]
                    total = Money.sum(l.employer_amount + l.employee_amount for l in good)
                    document = RemittanceDocument(
                        employer_code=employer.credit_code, period=period, kind=kind, document_number=number,
                        employer_id=employer.id, serial=serial, total=total, content_hash=_lines_digest(lines),
                        registered_on=registered_on,
                        lines=[[l.account_no, period, l.base, l.employer_amount, l.employee_amount] for l in good])
                    ref = SerialRef(serial=serial, kind="remittance", target_id=document.id, detail={})
                    outcomes[index] = _document_result(document, problems, len(good))
                    touched += [document, ref]
                touched.append(sequence)
            return outcomes, touched
        return self.execute("register-remittance", None, {}, body)

    def _check_document(self, employer: Employer, period: str, kind: str, lines: list[RemittanceLine],
                        ids: list[UUID], accounts: dict[UUID, Any]) -> list[LineProblem]:
        """The problems of a document's lines (CON-1/CON-2/ACC-2), in line order."""
        rules = _DocumentRules.of(self, employer, period, kind)
        problems = []
        for line, account_id in zip(lines, ids):
            problem = self.check_line(employer, period, kind, line, accounts.get(account_id), rules)
            if problem is not None:
                problems.append(problem)
        bad = {p.line for p in problems}
        seen: set[str] = set()
        for l in lines:  # one line per member in a document
            if l.account_no in seen and l.line not in bad:
                problems.append(LineProblem(l.line, "account_no", "CON-2", "the member appears twice"))
                bad.add(l.line)
            seen.add(l.account_no)
        problems.sort(key=lambda p: p.line)
        return problems

    def _repeat_document(self, existing: RemittanceDocument, digest: str,
                         problems: list[LineProblem]) -> dict[str, Any]:
        if existing.content_hash != digest:
            raise DocumentStateError(
                f"document {existing.document_number} for {existing.period} was registered with other content",
                field="document_number", rule="CON-2")
        result = _document_result(existing, [], existing.count)
        result["repeat"] = True
        return result

    def import_remittances(self, path: Path, registered_on: date,
                           progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Import a CSV list of one or more documents; report bad lines; apply good ones once.

        The whole file is read and checked first (BNK-3, CON-4); then its documents are registered a batch
        at a time (``IMPORT_BATCH_LINES`` lines of whole documents per transaction). A crash between
        batches leaves the earlier ones registered: importing the file again finds them (repeats, nothing
        applied) and registers exactly the rest."""
        report = ImportReport()
        with gc_paused():  # the list's lines and a batch's aggregates are many objects and no cycles
            documents, report.lines_read = read_remittance_csv(path, report.problems)
        for batch in _batches(list(documents.items()), IMPORT_BATCH_LINES):
            try:
                with gc_paused():
                    outcomes = self.register_remittances(batch, registered_on)
            except (LedgerRuleError, NotFoundError) as exc:  # the batch's own refusal (e.g. serials exhausted)
                outcomes = [exc] * len(batch)
            for (_key, lines), outcome in zip(batch, outcomes):
                if isinstance(outcome, BaseException):
                    report.problems.extend(LineProblem(l.line, getattr(outcome, "field", "employer") or "employer",
                                                       getattr(outcome, "rule", "CON-4"), str(outcome))
                                           for l in lines)
                else:
                    report.problems.extend(LineProblem(**p) for p in outcome.pop("problem_rows"))
                    report.documents.append(outcome)
                if progress:
                    progress(len(lines))
        report.problems.sort(key=lambda p: p.line)
        return report.as_dict()

    # -- money arrives ---------------------------------------------------------------
    def receive(self, bank: str, host_date: str, host_serial: str, bank_account: str, amount: str,
                value_date: date, serial: str = "") -> dict[str, Any]:
        """A bank receipt (BNK-2 keyed): pays a pending document by serial, the rest to suspense."""
        money = Money.parse(amount, "amount", positive=True)
        host_on = parse_host_date(host_date)  # BNK-2: a real 主机日期
        content = {"bank": bank, "host_date": host_date, "host_serial": host_serial, "account": bank_account,
                   "amount": str(money), "value_date": value_date.isoformat(), "serial": serial}
        key = f"bank-ref:{bank}:{host_date}:{host_serial}"

        def body():
            self.check_value_date(value_date)
            if host_on > self.today():
                raise ValueDateError(f"主机日期 {host_on} is after the recording date {self.today()}",
                                     field="host_date")
            self.policy.at(value_date).limits.check("receipt", money)
            document = self._document_by_serial(serial)
            credited, touched = ZERO, []
            if document is not None and document.state == "PENDING" and money >= document.total:
                credited, touched = self._credit_document(document, value_date, bank_account,
                                                          f"{bank}/{host_date}/{host_serial}")
            receipt = BankReceipt.record(bank, host_date, host_serial, bank_account, money, value_date, serial,
                                         _digest(content), credited, document.document_number if credited else "")
            result = {"bank_reference": receipt.reference, "amount": str(money), "applied": str(credited),
                      "suspense": str(receipt.suspense), "document": receipt.applied_to,
                      "members_credited": len(touched) - 1 if touched else 0}
            return result, [*touched, receipt]
        return self.execute("receive", key, content, body)

    def _document_by_serial(self, serial: str) -> RemittanceDocument | None:
        if not serial:
            return None
        ref = self.find(SerialRef.create_id(serial))
        if ref is None or ref.kind != "remittance":
            return None
        return self.find(ref.target_id)

    def _credit_document(self, document: RemittanceDocument, value_date: date, bank_account: str,
                         reference: str, debit_account: str | None = None) -> tuple[Money, list[Any]]:
        """Credit every line whose account still accepts it; a line that cannot is left in suspense."""
        credited = ZERO
        accounts = []
        loaded = self.load_many(FundAccount.create_id(line[0]) for line in document.lines)
        employer = self.find(document.employer_id) if document.kind == "back-payment" else None
        for index, (account_no, period, _base, employer_amount, employee_amount) in enumerate(document.lines):
            account = loaded.get(FundAccount.create_id(account_no))
            if account is None:
                continue
            try:
                account.credit_contribution(period, document.kind, employer_amount, employee_amount, value_date,
                                            document.document_number, bank_account,
                                            f"{document.serial}:{index + 1}", debit_account,
                                            period_cap=self._period_cap(account, employer, period))
            except LedgerRuleError:
                continue  # left in suspense for staff (CON-4)
            credited = credited + employer_amount + employee_amount
            accounts.append(account)
        document.mark_received(value_date=value_date, bank_reference=reference, amount=credited, source="bank")
        return credited, [*accounts, document]

    def _period_cap(self, account: FundAccount, employer: Any, period: str) -> Money | None:
        """CON-2: round(base × ratio) for both shares of ``period`` (None when not a back-payment)."""
        if employer is None:
            return None
        base, ratios = account.base_for(period), employer.ratios_for(period)
        if base is None or ratios is None:
            return None
        rounding = self.policy.at(date(int(period[:4]), int(period[5:]), 1)).contribution.share_rounding
        return share(base, ratios[0], rounding) + share(base, ratios[1], rounding)

    def allocate_suspense(self, bank: str, host_date: str, host_serial: str, serial: str,
                          value_date: date) -> dict[str, Any]:
        """Apply money held in suspense to a pending document (Dr 2102 / Cr 2001 per member)."""
        def body():
            self.check_value_date(value_date)
            receipt = self.load(BankReceipt, BankReceipt.create_id(bank, host_date, host_serial), "bank_reference")
            document = self._document_by_serial(serial)
            if document is None:
                raise NotFoundError(f"no remittance document with serial {serial}", "serial")
            document.check_receivable()
            if document.total > receipt.suspense:
                raise DocumentTotalError(f"suspense {receipt.suspense} does not cover {document.total}", field="serial")
            credited, touched = self._credit_document(document, value_date, receipt.bank_account, receipt.reference,
                                                      debit_account=GL_SUSPENSE)
            # The members' credits carry the journal (Dr 2102 / Cr 2001); the release only records it.
            receipt.release(credited, value_date, f"remittance:{serial}", None) if credited else None
            return {"bank_reference": receipt.reference, "allocated": str(credited),
                    "suspense": str(receipt.suspense)}, [*touched, receipt]
        return self.execute("allocate-suspense", f"allocate:{bank}:{host_date}:{host_serial}:{serial}", {}, body)

    def refund_suspense(self, bank: str, host_date: str, host_serial: str, amount: str, payee: str,
                        value_date: date) -> dict[str, Any]:
        """Return money held in suspense to its payer (Dr 2102 / Cr 2101, then a payout)."""
        money = Money.parse(amount, "amount", positive=True)

        def body():
            self.check_value_date(value_date)
            receipt = self.load(BankReceipt, BankReceipt.create_id(bank, host_date, host_serial), "bank_reference")
            posting_id = f"refund:{receipt.reference}:{len(receipt.allocations) + 1}"
            receipt.release(money, value_date, f"refund:{payee}", GL_CLEARING)
            payout, instructed = self.instruct_payout(posting_id, None, payee, money, value_date, "refund",
                                                      receipt.bank_account)
            return {"bank_reference": receipt.reference, "refunded": str(money), "serial": payout.serial,
                    "suspense": str(receipt.suspense)}, [receipt, *instructed]
        return self.execute("refund-suspense", f"refund:{bank}:{host_date}:{host_serial}:{money}:{payee}", {}, body)


def _batches(documents: list[Any], lines_max: int) -> Iterable[list[Any]]:
    """Consecutive whole documents, about ``lines_max`` lines a batch (a document is never split; a
    document longer than that is a batch of its own)."""
    batch: list[Any] = []
    count = 0
    for document in documents:
        if batch and count + len(document[1]) > lines_max:
            yield batch
            batch, count = [], 0
        batch.append(document)
        count += len(document[1])
    if batch:
        yield batch


def _lines_digest(lines: Iterable[RemittanceLine]) -> str:
    return _digest([[l.account_no, str(l.base), str(l.employer_amount), str(l.employee_amount)] for l in lines])


def _digest(payload: Any) -> str:
    from ledger.application import content_hash

    return content_hash(payload)


def _document_result(document: RemittanceDocument | None, problems: list[LineProblem], accepted: int) -> dict[str, Any]:
    return {
        "document": document.document_number if document else None,
        "employer": document.employer_code if document else None,
        "period": document.period if document else None,
        "serial": document.serial if document else None,
        "total": str(document.total) if document else "0.00",
        "accepted": accepted,
        "rejected": len(problems),
        "problem_rows": [p.as_dict() for p in problems],
    }
