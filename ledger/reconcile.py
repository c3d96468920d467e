"""Bank reconciliation (对账, REC-1): statement lines against the bank-deposit book 1001.<account>.

The ledger side is read from the events: every journal line on ``1001.<account>`` is one
:class:`LedgerEntry` (receipts positive, payments negative), with the serial (业务流水号) of the business
it belongs to — a contribution's posting id ``<serial>:<n>``, a receipt's or payout's own serial, a
card collection's debit serial and batch number (through the debit that carries its bank reference).

Matching, for one account and statement date S (entries value-dated after S are not considered):

1. a 冲正 Y line pairs with the line it reverses (same serial, else same 主机流水号; opposite amount),
   and a ledger reversal with the entry it mirrors — each pair nets to zero;
2. by the serial in 备注: one line to the entry with that serial and the same amount, else one line to
   every entry carrying that serial or batch number (a remittance's member credits, a debit batch);
   a different total is ``amount-differs``;
3. then by amount, for lines or entries without a serial (same 主机流水号 first, then nearest date);
4. what is left is ``bank-only`` or ``ledger-only``; a ledger-only entry is in transit for n working days
   (policy ``bank.in_transit_working_days``), then missing at the bank.

The 银行存款余额调节表: book balance + bank-only receipts − bank-only payments = bank balance + ledger-only
receipts − ledger-only payments. A difference is named: amounts that differ (this run and carried from
earlier runs) and a statement opening balance that is not the last reconciled bank balance.

A real run is recorded as a :class:`ReconciliationRun` aggregate, id from (account, S): what it matched,
the bank-only lines still open (carried into the next run), the bank balance and the differences. A later
run leaves out entries an earlier run matched. A dry run records nothing. The same statement again is a
no-op returning the first result; another statement for the same account and date is refused.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Iterable, Iterator
from uuid import UUID

from eventsourcing.domain import event

from bank_adapters.formats import StatementFile, StatementLine, find_serials
from ledger.aggregates.base import LedgerAggregate, LedgerRuleError, derive_id
from ledger.aggregates.fund_account import bank_account_code
from ledger.aggregates.offset import BankDebit
from ledger.application import content_hash, topic_of
from ledger.calendar import WorkingCalendar
from ledger.money import ZERO, Money
from ledger.services.books import journal_entries

REVERSAL_EVENTS = ("Reversed", "PaymentReversed", "Released")
TRANSIT_WORKING_DAYS_LOOKBACK_MAX = 366
STATEMENT_LINES_MAX = 1_000_000
CSV_COLUMNS = ("status", "how", "transit", "line", "bank_date", "bank_amount", "host_reference", "serial",
               "ledger_dates", "ledger_amount", "difference", "entries")


class ReconciliationError(LedgerRuleError):
    rule = "REC-1"


# -- the two sides ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerEntry:
    """One journal entry's net effect on a bank-deposit account."""

    key: str
    value_date: date
    amount: Money
    serial: str | None
    batch: str | None
    reference: str
    kind: str
    reversal: bool

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value_date": self.value_date.isoformat(), "amount": str(self.amount),
                "serial": self.serial, "batch": self.batch, "reference": self.reference, "kind": self.kind,
                "reversal": self.reversal}


@dataclass(frozen=True)
class BankItem:
    """One statement line (or a bank-only line carried from an earlier run)."""

    line: int
    host_reference: str
    amount: Money
    on: date
    serial: str | None
    reversal: bool
    remark: str = ""
    carried: bool = False

    @classmethod
    def of(cls, line: StatementLine, number: int) -> "BankItem":
        serials = find_serials(line.remark)
        return cls(number, line.host_reference, line.amount, line.transaction_on,
                   serials[0] if len(serials) == 1 else None, line.reversal, line.remark)

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "host_reference": self.host_reference, "amount": str(self.amount),
                "on": self.on.isoformat(), "serial": self.serial, "reversal": self.reversal, "remark": self.remark,
                "carried": self.carried}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BankItem":
        return cls(data["line"], data["host_reference"], Money(data["amount"]), date.fromisoformat(data["on"]),
                   data["serial"], data["reversal"], data["remark"], True)


class SerialFinder:
    """Which serial, batch and bank reference a journal entry belongs to, read from its event."""

    def __init__(self, ledger: Any):
        self.ledger = ledger
        self._aggregates: dict[UUID, Any] = {}
        self._debit_index: dict[str, tuple[str | None, str | None]] | None = None

    def aggregate(self, aggregate_id: UUID) -> Any:
        if aggregate_id not in self._aggregates:
            self._aggregates[aggregate_id] = self.ledger.find(aggregate_id)
        return self._aggregates[aggregate_id]

    def debit_index(self) -> dict[str, tuple[str | None, str | None]]:
        """bank reference → (debit serial, batch number) of every collected card debit."""
        if self._debit_index is None:
            index: dict[str, tuple[str | None, str | None]] = {}
            for collected in self.ledger.iter_events(topics=[topic_of(BankDebit, "Collected")]):
                debit = self.aggregate(collected.originator_id)
                serial = next((a["serial"] for a in debit.attempts if a["state"] == "COLLECTED"), None)
                index[collected.bank_reference] = (serial, (debit.batch or {}).get("number"))
            self._debit_index = index
        return self._debit_index

    def of(self, event: Any) -> tuple[str | None, str | None, str]:
        name = type(event).__name__
        if name == "PaymentReversed":
            loan = self.ledger.as_of(self.aggregate(event.originator_id), lambda whole: whole)
            payment = self.ledger.as_of(loan, lambda whole: whole.payment_of(event.allocation)) or {}
            return self._by_reference(payment.get("reference", ""))
        if getattr(event, "reference", None):
            return self._by_reference(event.reference)
        serial = getattr(event, "serial", None) or _serial_in(getattr(event, "posting_id", "") or "")
        if serial:
            return serial, None, _reference_of(event)
        owner = self.aggregate(event.originator_id)
        return (getattr(owner, "serial", None) or None), None, _reference_of(event) or _owner_reference(owner)

    def _by_reference(self, reference: str) -> tuple[str | None, str | None, str]:
        serial, batch = self.debit_index().get(reference, (None, None))
        return serial, batch, reference


def _serial_in(text: str) -> str | None:
    found = find_serials(text.split(":", 1)[-1] if text.startswith("rev:") else text)
    return found[0] if found else None


def _reference_of(event: Any) -> str:
    if getattr(event, "host_serial", None):
        return f"{event.bank}/{event.host_date}/{event.host_serial}"
    return getattr(event, "bank_reference", "") or ""


def _owner_reference(owner: Any) -> str:
    return getattr(owner, "reference", "") if isinstance(getattr(owner, "reference", ""), str) else ""


def bank_book_entries(ledger: Any, account: str, through: date) -> list[LedgerEntry]:
    """Every journal entry on 1001.<account> value-dated on or before ``through``."""
    code, finder, entries = bank_account_code(account), SerialFinder(ledger), []
    for recorded in ledger.iter_events():
        for number, (value_date, lines) in enumerate(journal_entries(recorded), start=1):
            mine = [line for line in lines if line["account"] == code]
            if value_date > through or not mine:
                continue
            net = Money.sum(line["amount"] if line["side"] == "Dr" else -line["amount"] for line in mine)
            serial, batch, reference = finder.of(recorded)
            key = f"{recorded.originator_id}:{recorded.originator_version}:{number}"
            entries.append(LedgerEntry(key, value_date, net, serial, batch, reference, type(recorded).__qualname__,
                                       type(recorded).__name__ in REVERSAL_EVENTS))
    return entries


# -- matching ------------------------------------------------------------------------------------------
@dataclass
class MatchRow:
    """One result: matched | amount-differs | reversal-pair | bank-only | ledger-only."""

    status: str
    how: str
    items: list[BankItem] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    transit: str = ""

    @property
    def bank_amount(self) -> Money:
        return Money.sum(i.amount for i in self.items)

    @property
    def ledger_amount(self) -> Money:
        return Money.sum(e.amount for e in self.entries)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "how": self.how, "transit": self.transit,
                "bank_amount": str(self.bank_amount), "ledger_amount": str(self.ledger_amount),
                "difference": str(self.ledger_amount - self.bank_amount),
                "lines": [i.as_dict() for i in self.items], "entries": [e.as_dict() for e in self.entries]}

    def csv_row(self) -> dict[str, str]:
        first = self.items[0] if self.items else None
        return {"status": self.status, "how": self.how, "transit": self.transit,
                "line": ";".join(str(i.line) for i in self.items), "bank_date": first.on.isoformat() if first else "",
                "bank_amount": str(self.bank_amount) if self.items else "",
                "host_reference": ";".join(i.host_reference for i in self.items),
                "serial": (first.serial if first else None) or next((e.serial for e in self.entries if e.serial), "")
                or "", "ledger_dates": ";".join(sorted({e.value_date.isoformat() for e in self.entries})),
                "ledger_amount": str(self.ledger_amount) if self.entries else "",
                "difference": str(self.ledger_amount - self.bank_amount),
                "entries": ";".join(e.key for e in self.entries)}


def _pair_bank_reversals(items: list[BankItem]) -> list[MatchRow]:
    rows = []
    for reversal in [i for i in items if i.reversal]:
        original = next((i for i in items if not i.reversal and i.amount == -reversal.amount and (
            i.serial == reversal.serial if reversal.serial else i.host_reference == reversal.host_reference)), None)
        if original is not None and reversal in items:
            items.remove(original)
            items.remove(reversal)
            rows.append(MatchRow("reversal-pair", "冲正", [original, reversal]))
    return rows


def _pair_ledger_reversals(entries: list[LedgerEntry]) -> list[MatchRow]:
    rows = []
    for reversal in [e for e in entries if e.reversal]:
        original = next((e for e in entries if not e.reversal and e.amount == -reversal.amount
                         and e.serial == reversal.serial and e.reference == reversal.reference), None)
        if original is not None and reversal in entries:
            entries.remove(original)
            entries.remove(reversal)
            rows.append(MatchRow("reversal-pair", "reversal", [], [original, reversal]))
    return rows


def _match_by_serial(items: list[BankItem], entries: list[LedgerEntry]) -> list[MatchRow]:
    rows = []
    for serial in dict.fromkeys(i.serial for i in items if i.serial):
        group = [e for e in entries if serial in (e.serial, e.batch)]
        lines = [i for i in items if i.serial == serial]
        for item in list(lines):
            single = next((e for e in group if e.serial == serial and e.amount == item.amount), None)
            if single is not None:
                rows.append(MatchRow("matched", "serial", [item], [single]))
                for taken_from in (lines, items):
                    taken_from.remove(item)
                group.remove(single)
                entries.remove(single)
        if len(lines) == 1 and group:
            status = "matched" if Money.sum(e.amount for e in group) == lines[0].amount else "amount-differs"
            how = "batch" if any(e.batch == serial for e in group) else "serial"
            rows.append(MatchRow(status, how, lines, group))
            items.remove(lines[0])
            for entry in group:
                entries.remove(entry)
    return rows


def _match_by_amount(items: list[BankItem], entries: list[LedgerEntry]) -> list[MatchRow]:
    rows = []
    for item in list(items):
        candidates = [e for e in entries if e.amount == item.amount and (item.serial is None or e.serial is None)]
        if not candidates:
            continue
        chosen = min(candidates, key=lambda e: (not e.reference.endswith(f"/{item.host_reference}"),
                                                abs((e.value_date - item.on).days), e.value_date))
        rows.append(MatchRow("matched", "amount", [item], [chosen]))
        items.remove(item)
        entries.remove(chosen)
    return rows


def working_days_between(start: date, end: date, calendar: WorkingCalendar) -> int:
    """Working days d with start < d ≤ end (bounded)."""
    count, day = 0, start
    for _ in range(TRANSIT_WORKING_DAYS_LOOKBACK_MAX):
        if day >= end:
            return count
        day += timedelta(days=1)
        count += calendar.is_working_day(day)
    return count


def match(items: Iterable[BankItem], entries: Iterable[LedgerEntry], statement_on: date, in_transit_days: int,
          calendar: WorkingCalendar) -> list[MatchRow]:
    """REC-1: reversal pairs, then serial, then amount; the rest bank-only / ledger-only."""
    items_left, entries_left = list(items), list(entries)
    rows = _pair_bank_reversals(items_left) + _pair_ledger_reversals(entries_left)
    rows += _match_by_serial(items_left, entries_left)
    rows += _match_by_amount(items_left, entries_left)
    rows += [MatchRow("bank-only", "", [i]) for i in items_left]
    for entry in entries_left:
        late = working_days_between(entry.value_date, statement_on, calendar) > in_transit_days
        rows.append(MatchRow("ledger-only", "", [], [entry], "missing-at-bank" if late else "in-transit"))
    return rows


# -- the run and its record ---------------------------------------------------------------------------------
class ReconciliationRun(LedgerAggregate):
    """One recorded reconciliation of a centre bank account at a statement date (REC-1)."""

    @staticmethod
    def create_id(account: str, statement_on: date) -> UUID:
        return derive_id("reconciliation", account, statement_on.isoformat())

    @event("Recorded")
    def __init__(self, account: str, statement_on: date, digest: str, sheet: dict[str, Any],
                 counts: dict[str, int], matched_keys: list[str], outstanding: list[dict[str, Any]],
                 bank_balance: Money, differences_total: Money):
        self.account = account
        self.statement_on = statement_on
        self.digest = digest
        self.sheet = sheet
        self.counts = counts
        self.matched_keys = matched_keys
        self.outstanding = outstanding
        self.bank_balance = bank_balance
        self.differences_total = differences_total


@dataclass
class Previous:
    """What earlier recorded runs of the account leave to this one."""

    matched_keys: set[str] = field(default_factory=set)
    outstanding: list[BankItem] = field(default_factory=list)
    bank_balance: Money = ZERO
    differences_total: Money = ZERO
    last_on: date | None = None


def previous_runs(ledger: Any, account: str, before: date) -> Previous:
    runs = ledger.load_many(ledger.ids_of(topic_of(ReconciliationRun, "Recorded")))
    mine = sorted((r for r in runs.values() if r.account == account), key=lambda r: r.statement_on)
    earlier = [r for r in mine if r.statement_on < before]
    previous = Previous(last_on=mine[-1].statement_on if mine else None)
    for run in earlier:
        previous.matched_keys.update(run.matched_keys)
    if earlier:
        last = earlier[-1]
        previous.outstanding = [BankItem.from_dict(d) for d in last.outstanding]
        previous.bank_balance, previous.differences_total = last.bank_balance, last.differences_total
    return previous


@dataclass
class Reconciliation:
    """The result for one account: rows, the 余额调节表 and its named differences."""

    account: str
    statement_on: date
    rows: list[MatchRow]
    book_balance: Money
    bank_balance: Money
    opening_balance: Money
    previous: Previous
    digest: str
    recorded: bool = False
    repeat: bool = False

    def _open_items(self, status: str) -> tuple[Money, Money]:
        """(receipts, payments) of the bank-only or ledger-only rows, both as positive sums."""
        amounts = [r.bank_amount if status == "bank-only" else r.ledger_amount for r in self.rows if r.status == status]
        return Money.sum(a for a in amounts if a > ZERO), -Money.sum(a for a in amounts if a < ZERO)

    @property
    def differences_now(self) -> Money:
        return Money.sum(r.ledger_amount - r.bank_amount for r in self.rows if r.status == "amount-differs")

    def sheet(self) -> dict[str, Any]:
        bank_in, bank_out = self._open_items("bank-only")
        ledger_in, ledger_out = self._open_items("ledger-only")
        adjusted_book = self.book_balance + bank_in - bank_out
        adjusted_bank = self.bank_balance + ledger_in - ledger_out
        named = {"amount_differs": self.differences_now, "amount_differs_carried": self.previous.differences_total,
                 "opening_balance_gap": self.previous.bank_balance - self.opening_balance}
        difference = adjusted_book - adjusted_bank
        named["unexplained"] = difference - Money.sum(named.values())
        return {"book_balance": self.book_balance, "bank_only_receipts": bank_in, "bank_only_payments": bank_out,
                "adjusted_book_balance": adjusted_book, "bank_balance": self.bank_balance,
                "ledger_only_receipts": ledger_in, "ledger_only_payments": ledger_out,
                "adjusted_bank_balance": adjusted_bank, "difference": difference,
                "named_differences": {k: v for k, v in named.items() if not v.is_zero},
                "balanced": difference.is_zero}

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            name = f"{row.status}:{row.transit}" if row.transit else row.status
            counts[name] = counts.get(name, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "statement_on": self.statement_on.isoformat(), "recorded": self.recorded,
                "repeat": self.repeat, "counts": self.counts(), "sheet": _text_money(self.sheet()),
                "rows": [r.as_dict() for r in self.rows]}

    def record(self) -> ReconciliationRun:
        matched = [e.key for r in self.rows if r.status != "ledger-only" for e in r.entries]
        outstanding = [i.as_dict() for r in self.rows if r.status == "bank-only" for i in r.items]
        return ReconciliationRun(account=self.account, statement_on=self.statement_on, digest=self.digest,
                                 sheet=_text_money(self.sheet()), counts=self.counts(), matched_keys=matched,
                                 outstanding=outstanding, bank_balance=self.bank_balance,
                                 differences_total=self.previous.differences_total + self.differences_now)


def _text_money(value: Any) -> Any:
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, dict):
        return {k: _text_money(v) for k, v in value.items()}
    return value


# -- entry point for the CLI -------------------------------------------------------------------------------
def reconcile(ledger: Any, statement: StatementFile, *, statement_on: date | None = None, dry_run: bool = True,
              first_line: int = 1) -> list[Reconciliation]:
    """REC-1 for every centre account in the statement; a real run records each account's result."""
    if len(statement.lines) > STATEMENT_LINES_MAX:
        raise ReconciliationError(f"at most {STATEMENT_LINES_MAX} statement lines", field="file")
    numbered = [(first_line + n, line) for n, line in enumerate(statement.lines)]
    day = statement_on or max((line.transaction_on for _, line in numbered), default=None)
    if day is None:
        raise ReconciliationError("the statement has no lines", field="file")
    accounts = list(dict.fromkeys(line.account_number for _, line in numbered))
    results = []
    for account in accounts:
        lines = [(n, l) for n, l in numbered if l.account_number == account and l.transaction_on <= day]
        results.append(_reconcile_account(ledger, account, day, lines, dry_run))
    return results


def _reconcile_account(ledger: Any, account: str, day: date, lines: list[tuple[int, StatementLine]],
                       dry_run: bool) -> Reconciliation:
    balances = [l for _, l in lines if l.balance is not None]
    if not balances:
        raise ReconciliationError(f"the statement carries no 余额 for {account}", field="balance")
    previous = previous_runs(ledger, account, day)
    if not dry_run and previous.last_on and previous.last_on > day:
        raise ReconciliationError(f"{account} is already reconciled to {previous.last_on}", field="statement_on")
    first = balances[0]
    all_entries = bank_book_entries(ledger, account, day)
    candidates = [e for e in all_entries if e.key not in previous.matched_keys]
    items = previous.outstanding + [BankItem.of(l, n) for n, l in lines]
    calendar = getattr(ledger, "calendar", None) or WorkingCalendar()
    in_transit = ledger.policy.at(day).bank.in_transit_working_days
    result = Reconciliation(account, day, match(items, candidates, day, in_transit, calendar),
                            Money.sum(e.amount for e in all_entries), balances[-1].balance,
                            first.balance - first.amount, previous, _digest(account, day, lines))
    return result if dry_run else _record(ledger, result)


def _digest(account: str, day: date, lines: list[tuple[int, StatementLine]]) -> str:
    return content_hash([account, day.isoformat()] + [[l.host_reference, str(l.amount), l.transaction_on.isoformat(),
                                                        l.remark, l.reversal] for _, l in lines])


def _record(ledger: Any, result: Reconciliation) -> Reconciliation:
    def body():
        run = result.record()
        return {"run_id": str(run.id), "digest": result.digest}, [run]
    first = ledger.execute("reconcile", f"reconcile:{result.account}:{result.statement_on.isoformat()}",
                           {"digest": result.digest}, body)
    result.recorded, result.repeat = True, bool(first.get("repeat"))
    return result


# -- output ------------------------------------------------------------------------------------------------
def to_csv(results: Iterable[Reconciliation]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=("account", "statement_on", *CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for result in results:
        for row in result.rows:
            writer.writerow({"account": result.account, "statement_on": result.statement_on.isoformat(),
                             **row.csv_row()})
    return buffer.getvalue()


def to_text(result: Reconciliation) -> str:
    """A readable 银行存款余额调节表 and the items that explain it."""
    return "\n".join(_sheet_lines(result) + [""] + list(_item_lines(result)))


def _sheet_lines(result: Reconciliation) -> list[str]:
    s = result.sheet()
    width = 14
    pairs = [("银行存款日记账余额 book balance", s["book_balance"], "银行对账单余额 bank balance", s["bank_balance"]),
             ("加 银行已收企业未收 bank-only receipts", s["bank_only_receipts"],
              "加 企业已收银行未收 ledger-only receipts", s["ledger_only_receipts"]),
             ("减 银行已付企业未付 bank-only payments", s["bank_only_payments"],
              "减 企业已付银行未付 ledger-only payments", s["ledger_only_payments"]),
             ("调节后余额 adjusted", s["adjusted_book_balance"], "调节后余额 adjusted", s["adjusted_bank_balance"])]
    lines = [f"银行存款余额调节表  account {result.account}  statement date {result.statement_on.isoformat()}"
             + ("  (recorded)" if result.recorded else "  (dry run)"), ""]
    lines += [f"{a:<40}{b.formatted():>{width}}    {c:<42}{d.formatted():>{width}}" for a, b, c, d in pairs]
    lines.append("")
    lines.append("balanced" if s["balanced"] else f"DIFFERENCE {s['difference'].formatted()}")
    lines += [f"  {name.replace('_', ' ')}: {value.formatted()}" for name, value in s["named_differences"].items()]
    return lines


def _item_lines(result: Reconciliation) -> Iterator[str]:
    yield f"{'status':<28}{'how':<9}{'line':>6}  {'date':<11}{'bank':>14}{'ledger':>14}  serial / reference"
    for row in sorted(result.rows, key=lambda r: (r.status == "matched", r.status, r.transit)):
        first = row.items[0] if row.items else None
        when = (first.on if first else row.entries[0].value_date).isoformat()
        serial = (first.serial if first else None) or next((e.serial for e in row.entries if e.serial), "") or ""
        reference = first.host_reference if first else next((e.reference for e in row.entries), "")
        label = f"{row.status}{'/' + row.transit if row.transit else ''}"
        yield (f"{label:<28}{row.how:<9}{first.line if first else '':>6}  {when:<11}"
               f"{row.bank_amount.formatted() if row.items else '':>14}"
               f"{row.ledger_amount.formatted() if row.entries else '':>14}  {serial} {reference}".rstrip())
