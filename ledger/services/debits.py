"""Card debits after the offset (OFF-3): submit, collect, fail, retry, exhaust; BNK-2, BNK-5.

A collection counts as paid on the bank's host date (主机日期), never the import
date: the loan payment is value-dated then (Dr 1001 / Cr 4002, 1102, 1101;
money beyond the amount due, or for a closed loan, goes to suspense 2102). A
failure maps its response code through the dated policy table to (retryable,
cause); a retryable one is tried again on the following working day up to
``retry_count_max`` times, then EXHAUSTED; a failure the bank or the centre
caused opens an automatic waiver (LN-8) for the instalments until the next attempt.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.documents import CENTRE_SERIAL_SCOPE, BankReceipt, SerialRef
from ledger.aggregates.loan import ACTIVE, Loan
from ledger.aggregates.offset import BankDebit, DebitStateError
from ledger.application import NotFoundError, chunked, topic_of
from ledger.money import ZERO, Money

DEBIT_BATCH_SIZE = 500


class DebitCommands:
    """Mixin on the ledger application: the life of a card debit."""

    def debit_by_serial(self, serial: str) -> BankDebit:
        ref = self.find(SerialRef.create_id(serial))
        if ref is None or ref.kind != "debit":
            raise NotFoundError(f"no card debit with serial {serial}", "serial")
        return self.repository.get(ref.target_id)

    def debits(self, states: tuple[str, ...] = ("CREATED",), bank: str | None = None) -> list[BankDebit]:
        found = []
        for batch in chunked(self.ids_of(topic_of(BankDebit, "Created")), 1000):
            for debit in self.load_many(batch).values():
                if debit.state in states and (bank is None or debit.bank == bank):
                    found.append(debit)
        return sorted(found, key=lambda d: d.serial)

    def submit_debits(self, debits: list[BankDebit], on: date, batch_number: str) -> list[dict[str, Any]]:
        """Mark CREATED debits SUBMITTED under one batch number (the BDC105 export, OFF-3)."""
        def body():
            rows = []
            fresh = self.load_many(d.id for d in debits)
            for sequence, debit in enumerate(sorted(fresh.values(), key=lambda d: d.serial), start=1):
                debit.check_state("CREATED")
                debit.submit(on=on, batch_number=batch_number, sequence=sequence)
                rows.append({"sequence": sequence, "serial": debit.serial, "amount": debit.amount,
                             "card": debit.card, "name": debit.payer_name, "loan_no": debit.loan_no})
            return {"rows": rows}, list(fresh.values())
        content = {"serials": sorted(d.serial for d in debits)}  # a reused batch number for other debits is refused
        return self.execute("submit-debits", f"submit:{batch_number}", content, body)["rows"]

    def collect_debit(self, serial: str, host_date: date, bank_reference: str, amount: Money) -> dict[str, Any]:
        """COLLECTED: the loan is paid as of the host date; what cannot be applied goes to suspense (BNK-5):
        money for a closed loan, and money whose host date is before a payment the loan already took
        (applying it would re-allocate that later payment; staff allocate it from suspense)."""
        content = {"serial": serial, "host_date": host_date.isoformat(), "amount": str(amount)}

        def body():
            debit = self.debit_by_serial(serial)
            debit.check_state("SUBMITTED")
            if amount != debit.amount:
                raise DebitStateError(f"collected {amount} differs from the debit {debit.amount}", field="amount",
                                      rule="BNK-4")
            debit.mark_collected(host_date=host_date, bank_reference=bank_reference, amount=amount)
            loan = self.loan(debit.loan_no)
            behind = loan.state == ACTIVE and loan.disbursed_on is not None and host_date < loan.book.last_on
            if loan.state == ACTIVE and not behind:
                figures = loan.pay(amount, host_date, "card", bank_reference, self.centre_bank_account)
                return {"serial": serial, "state": debit.state, "applied": str(amount - figures["excess"]),
                        "suspense": str(figures["excess"])}, [debit, loan]
            receipt = BankReceipt.record(debit.bank, host_date.strftime("%Y%m%d"), bank_reference,
                                         self.centre_bank_account, amount, host_date, serial, "", ZERO,
                                         f"{'backdated, for staff' if behind else 'closed'} loan {loan.loan_no}")
            return {"serial": serial, "state": debit.state, "applied": "0.00", "suspense": str(amount)}, \
                [debit, receipt]
        return self.execute("collect-debit", f"debit-result:{bank_reference}", content, body)

    def fail_debit(self, serial: str, on: date, code: str, message: str, bank_reference: str) -> dict[str, Any]:
        """FAILED(code): retry on the next working day, or EXHAUSTED; bank/centre cause → waiver."""
        content = {"serial": serial, "code": code, "on": on.isoformat()}

        def body():
            debit = self.debit_by_serial(serial)
            rules = self.policy.at(on).offset
            response = rules.response(code, message)
            next_day = self.calendar.next_working_day(on + timedelta(days=1))
            debit.fail(on, code, message, response.retryable, response.cause, rules.retry_count_max, next_day)
            touched: list[Any] = [debit]
            if response.cause in ("bank", "centre"):
                loan = self.loan(debit.loan_no)
                if loan.state == ACTIVE:
                    self._waive_for_debit(loan, debit, on, next_day)
                    touched.append(loan)
            return {"serial": serial, "state": debit.state, "retryable": response.retryable,
                    "cause": response.cause, "next_attempt_on": debit.next_attempt_on.isoformat()
                    if debit.next_attempt_on else None, "manual": debit.failure["manual"]}, touched
        return self.execute("fail-debit", f"debit-result:{bank_reference or serial + ':' + code}", content, body)

    def _waive_for_debit(self, loan: Loan, debit: BankDebit, on: date, until: date) -> None:
        """OFF-3: not the borrower's fault: no penalty or overdue status until the next attempt."""
        accounts = {n: loan.book.account(n) for n in debit.instalments if 1 <= n <= loan.book.instalment_count}
        first_due = min((a.due_on for a in accounts.values()), default=on)
        for number in debit.instalments:
            account = accounts.get(number)
            if account is not None and not account.cleared:
                loan.waive(first_due, until, max(on, loan.book.last_on), "debit", number)

    def _failed_debits(self, on: date) -> list[BankDebit]:
        """Debits whose failure asked for a retry by ``on`` (from the Failed events, kept per process)."""
        cache = self.__dict__.setdefault("_failed_index", [0, {}])
        for notification in self.iter_notifications(topics=[topic_of(BankDebit, "Failed")], start=cache[0] + 1):
            event = self.mapper.to_domain_event(notification)
            if event.next_attempt_on is not None:
                cache[1][event.originator_id] = event.next_attempt_on
            cache[0] = notification.id
        candidates = [debit_id for debit_id, next_on in cache[1].items() if next_on <= on]
        found = list(self.load_many(candidates).values())
        for debit in found:
            if debit.state != "FAILED":
                cache[1].pop(debit.id, None)  # retried, cancelled or exhausted since
        return found

    def retry_debits(self, on: date) -> dict[str, Any]:
        """Daily: FAILED debits whose next attempt is due get a new serial and the amount still due."""
        due = [d for d in self._failed_debits(on) if d.state == "FAILED" and d.next_attempt_on
               and d.next_attempt_on <= on]
        retried = cancelled = 0
        for batch in chunked(due, DEBIT_BATCH_SIZE):
            def body(batch=batch):
                touched, counts = [], [0, 0]
                sequence, _ = self.take_serials(CENTRE_SERIAL_SCOPE, on, 0)
                for debit in self.load_many(d.id for d in batch).values():
                    loan = self.loan(debit.loan_no)
                    still_due = loan.book.amount_due(max(on, loan.book.last_on)) if loan.state == ACTIVE else ZERO
                    amount = debit.amount.min(still_due)
                    if amount.is_zero:
                        debit.cancel(on=on, reason="nothing due any more")
                        counts[1] += 1
                    else:
                        (serial,) = sequence.take(1)
                        debit.retry(on=on, serial=serial, amount=amount)
                        touched.append(SerialRef(serial=serial, kind="debit", target_id=debit.id, detail={}))
                        counts[0] += 1
                    touched.append(debit)
                return {"retried": counts[0], "cancelled": counts[1]}, [*touched, sequence]
            result = self.execute("retry-debits", None, {}, body)
            retried, cancelled = retried + result["retried"], cancelled + result["cancelled"]
        return {"on": on.isoformat(), "retried": retried, "cancelled": cancelled}
