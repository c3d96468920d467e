"""Withdrawals (提取, WD-1..4), payouts, court deductions, reversals (COR) and interest (INT).

A withdrawal debits the member (Dr 2001 / Cr 2101) and instructs a payout;
the bank's answer settles it (paid: Dr 2101 / Cr 1001; failed: the money is
credited back, Dr 2101 / Cr 2001). Closing kinds pay balance + INT-2 interest
and close the account. A reversal mirrors its original (COR-1) and, in an
interest year already settled, posts the interest adjustment (COR-3).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Callable, Sequence

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.documents import CENTRE_SERIAL_SCOPE, LOAN_REFUND_PURPOSE, Payout, SerialRef
from ledger.aggregates.errors import (
    ReversalError,
    WithdrawalCapError,
    WithdrawalEvidenceError,
    WithdrawalKindError,
    WithdrawalNotAllowedError,
)
from ledger.aggregates.fund_account import CLOSED, GL_CLEARING, GL_FUND, FundAccount
from ledger.aggregates.parties import Member
from ledger.application import NotFoundError, chunked, gc_paused
from ledger.interest import InterestResult, compute_interest, interest_year
from ledger.money import ZERO, Money
from ledger.policy import PolicyVersion

INTEREST_BATCH_SIZE = 1000
MISSED_YEARS_MAX = 100


def _months_before(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 - months
    return date(total // 12, total % 12 + 1, min(day.day, 28))


def _months(value: Any) -> int:
    """A whole, positive number of months from the evidence (WD-1), else refused naming the field."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise WithdrawalEvidenceError(f"months must be a whole number above zero (got {value!r})", field="months")
    return int(text)


NOT_BACKDATED_POSTINGS = ("Reversed", "InterestSettled", "InterestAdjusted")  # each posts its own interest


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _rent_used(household: list[dict[str, Any]], first: int, months: int) -> Money:
    """WD-2 rent is capped per month, cumulatively per household: the part of earlier rent withdrawals
    that covers the months ``first`` .. ``first + months - 1`` (each covers its ``months`` from the month
    of its value date, spread evenly over them)."""
    used = Decimal(0)
    for row in household:
        if row["kind"] != "rent":
            continue
        covered = _months(row["evidence"].get("months", 1))
        start = _month_index(row["value_date"])
        overlap = min(start + covered, first + months) - max(start, first)
        if overlap > 0:
            used += row["amount"].amount * overlap / covered
    return Money.of(used)


def _check_contract_date(evidence: dict[str, Any], since: date, value_date: date, window: int) -> None:
    """WD-2: a purchase withdrawal comes within the window ⚙ after the contract (and not before it)."""
    try:
        signed = date.fromisoformat(str(evidence["contract_date"]).strip())
    except ValueError:
        raise WithdrawalEvidenceError(f"contract_date must be a date YYYY-MM-DD (got {evidence['contract_date']!r})",
                                      field="contract_date") from None
    if not since <= signed <= value_date:
        raise WithdrawalNotAllowedError(
            f"a purchase withdrawal comes within {window} months after the contract: contract {signed}, "
            f"withdrawal {value_date}", field="contract_date", rule="WD-2")


def _payee(rule: Any, evidence: dict[str, Any], payee: str | None, member: Member) -> str:
    """Who the bank pays: the member, or for a kind whose evidence names a payee (death: the heirs) that payee."""
    named = (payee or str(evidence.get("payee", "")).strip() or member.name).strip()
    if "payee" in rule.evidence and named == member.name:
        raise WithdrawalEvidenceError(f"the payee of a {rule.kind} withdrawal is not the member", field="payee")
    return named


class WithdrawalCommands:
    """Mixin on the ledger application: money out, corrections and interest."""

    def interest_to(self, account: FundAccount, end: date, policy: PolicyVersion) -> InterestResult:
        """INT-1/INT-2: interest from the last settlement (or opening) to ``end`` inclusive."""
        last = account.last_settled_end()
        start = last + timedelta(days=1) if last else interest_year(end, policy.interest.year_start_month)[0]
        year_start = interest_year(end, policy.interest.year_start_month)[0]
        start = max(start, year_start)
        if start > end:  # INT-2: closing on 1 July, the year already settled up to 30 June
            return InterestResult(start, end, Decimal(0), ZERO, policy.interest.method, (), year_start)
        rates = [(r.effective_from, r.annual_rate) for r in policy.interest.rates]
        result = compute_interest(policy.interest.method, account.interest_movements(since=start), start, end, rates,
                                  policy.interest.daily_rate)
        return replace(result, year_start=year_start)

    def _settle_missed_years(self, account: FundAccount, end: date) -> Money:
        """INT-2 from the *last settlement*: a year that ended before ``end`` but was not settled yet
        (closing on 5 July before the yearly run) is settled first, value-dated its 30 June, so the
        closing interest only covers the year in progress and no year is lost or paid twice.
        """
        month = self.policy.at(end).interest.year_start_month
        current_start = interest_year(end, month)[0]
        last = account.last_settled_end()
        first_day = min([account.opened_on, *(m[0] for m in account.movements)])
        year_start, year_end = interest_year(last + timedelta(days=1) if last else first_day, month)
        credited = ZERO
        for _year in range(MISSED_YEARS_MAX):
            if year_end >= current_start:
                return credited
            settled = account.interest_years.get(str(year_start.year))
            if settled is None or settled["end"] < year_end:  # never, or only up to a closing part-way
                result = self.interest_to(account, year_end, self.policy.at(year_end))
                account.settle_interest(result, f"int:{year_start.year}:{account.account_no}")
                credited = credited + result.interest
            year_start, year_end = interest_year(year_end + timedelta(days=1), month)
        raise AssertionError(f"{account.account_no}: more than {MISSED_YEARS_MAX} unsettled interest years")

    # -- withdrawals ---------------------------------------------------------------
    def withdraw(self, account_no: str, kind: str, amount: str | None, value_date: date, evidence: dict[str, Any],
                 idempotency_key: str, payee: str | None = None) -> dict[str, Any]:
        content = {"account": account_no, "kind": kind, "amount": amount, "value_date": value_date.isoformat(),
                   "evidence": evidence, "payee": payee}

        def body():
            self.check_value_date(value_date)
            policy = self.policy.at(value_date)
            rule = policy.withdrawal.kind(kind)
            if rule is None:
                raise WithdrawalKindError(f"unknown withdrawal kind {kind!r}", field="kind")
            missing = [name for name in rule.evidence if not str(evidence.get(name, "")).strip()]
            if missing:
                raise WithdrawalEvidenceError(f"evidence {', '.join(missing)} is required for {rule.kind}",
                                              field=missing[0])
            account = self.account(account_no)
            member = self.load(Member, account.member_id, "account")
            money = None if rule.closing else Money.parse(amount, "amount", positive=True)
            if money is not None:
                policy.limits.check("withdrawal", money)
            self._check_withdrawal_rules(account, member, rule, money, value_date, evidence, policy)
            payee_name = _payee(rule, evidence, payee, member)
            posting_id = f"wd:{idempotency_key}"
            interest, missed = None, ZERO
            if rule.closing:
                missed = self._settle_missed_years(account, value_date - timedelta(days=1))
                interest = self.interest_to(account, value_date - timedelta(days=1), policy)
            account.withdraw(rule.kind, rule.code, money or ZERO, value_date, evidence,
                             policy.account.retained_balance_min, posting_id, payee_name,
                             closing=rule.closing, interest=interest,
                             policy_used={"retained_balance_min": str(policy.account.retained_balance_min)})
            paid = account.withdrawals[-1]["amount"]
            serial, instructed = "", []
            if not paid.is_zero:  # closing an empty account pays nothing: no 0.00 instruction to the bank
                payout, instructed = self.instruct_payout(posting_id, account_no, payee_name, paid, value_date,
                                                          f"withdrawal:{rule.code}")
                serial = payout.serial
            ended = self.end_offset_agreements([account], value_date, "PAYER_CLOSED:withdrawal") \
                if rule.closing else []
            return {"account_no": account_no, "kind": rule.kind, "reason_code": rule.code, "amount": str(paid),
                    "interest": str(missed + interest.interest) if interest else "0.00", "serial": serial,
                    "posting_id": posting_id, "state": account.state, "balance": str(account.balance)}, \
                [account, *instructed, *ended]
        return self.execute("withdraw", idempotency_key, content, body)

    def _check_withdrawal_rules(self, account: FundAccount, member: Member, rule: Any, money: Money | None,
                                value_date: date, evidence: dict[str, Any], policy: PolicyVersion) -> None:
        if rule.closing and rule.code != "06" and self._household_has_outstanding_loan(member):
            raise WithdrawalNotAllowedError("a borrower or spouse may close the account only after payoff",
                                            field="kind")
        last_on = account.last_withdrawn_on.get(rule.kind)
        if last_on is not None and rule.next_allowed_days:
            allowed = last_on + timedelta(days=rule.next_allowed_days)
            if value_date < allowed:
                raise WithdrawalNotAllowedError(f"the next {rule.kind} withdrawal is allowed from {allowed}",
                                                field="value_date", rule="WD-1")
        if money is not None:
            self._check_cap(account, member, rule.kind, money, value_date, evidence, policy)

    def _household_has_outstanding_loan(self, member: Member) -> bool:
        """WD-4: the borrower *or spouse* with an outstanding loan."""
        if member.has_outstanding_loan:
            return True
        spouse = self.find(member.spouse_id) if member.spouse_id is not None else None
        return isinstance(spouse, Member) and spouse.has_outstanding_loan

    def _household_withdrawals(self, account: FundAccount, member: Member, since: date) -> list[dict[str, Any]]:
        """WD-2: the household's withdrawals value-dated on or after ``since``."""
        rows = account.withdrawals_since(since)
        if member.spouse_id is not None:
            spouse = self.find(member.spouse_id)
            spouse_account = spouse and self.find(FundAccount.create_id(spouse.account_no))
            if spouse_account is not None:
                rows.extend(spouse_account.withdrawals_since(since))
        return rows

    def _check_cap(self, account: FundAccount, member: Member, kind: str, money: Money, value_date: date,
                   evidence: dict[str, Any], policy: PolicyVersion) -> None:
        """WD-2: cumulative household caps over their window."""
        if kind == "purchase":
            since = _months_before(value_date, policy.withdrawal.purchase_window_months)
            _check_contract_date(evidence, since, value_date, policy.withdrawal.purchase_window_months)
            cap = Money.parse(evidence["price"], "price") - Money.parse(evidence.get("loan_amount", "0"), "loan_amount")
            household = self._household_withdrawals(account, member, since)
            used = Money.sum(w["amount"] for w in household if w["kind"] == kind)
        elif kind == "rent":
            monthly = Money.parse(evidence["monthly_rent"], "monthly_rent").min(policy.withdrawal.rent_monthly_cap)
            months = _months(evidence["months"])
            cap = monthly.times(Decimal(months))
            # a rent withdrawal covers its months however long ago it was paid: every one counts
            household = self._household_withdrawals(account, member, date.min)
            used = _rent_used(household, _month_index(value_date), months)
        elif kind == "loan-repayment":
            cap = Money.parse(evidence["due_this_year"], "due_this_year")
            year_start = date(value_date.year, 1, 1)
            household = self._household_withdrawals(account, member, year_start)
            used = Money.sum(w["amount"] for w in household if w["kind"] == kind)
            used = used + account.offset_debits_in(value_date.year)
        else:
            return
        if used + money > cap:
            raise WithdrawalCapError(f"{kind} cap {cap} with {used} already withdrawn leaves {(cap - used).max(ZERO)}",
                                     field="amount")

    def settle_payout(self, serial: str, paid: bool, value_date: date, bank_reference: str) -> dict[str, Any]:
        """The bank's answer to a payout: paid, or failed and credited back (BNK-2 keyed)."""
        content = {"serial": serial, "paid": paid, "value_date": value_date.isoformat()}

        def body():
            self.check_value_date(value_date)
            payout = self._payout_by_serial(serial)
            journal = payout.settle(paid, value_date, bank_reference)
            touched: list[Any] = [payout]
            if not paid and payout.purpose == LOAN_REFUND_PURPOSE:
                loan = self.loan(payout.posting_id.split(":")[1])
                loan.refund_failed(posting_id=payout.posting_id, value_date=value_date)
                touched.append(loan)
            if journal and payout.account_no:
                account = self.account(payout.account_no)
                account.credit_back(payout.amount, value_date, f"{payout.posting_id}:failed", payout.posting_id,
                                    "payout-failed", journal)
                touched.append(account)
            return {"serial": serial, "state": payout.state, "amount": str(payout.amount)}, touched
        return self.execute("settle-payout", f"payout-result:{bank_reference}", content, body)

    def instruct_payout(self, posting_id: str, account_no: str | None, payee: str, amount: Money, value_date: date,
                        purpose: str, bank_account: str | None = None) -> tuple[Payout, list[Any]]:
        """A payment instruction with its serial and serial index, to save with the debit that funds it."""
        sequence, (serial,) = self.take_serials(CENTRE_SERIAL_SCOPE, value_date)
        payout = Payout(posting_id=posting_id, account_no=account_no, payee=payee, amount=amount,
                        value_date=value_date, serial=serial, purpose=purpose,
                        bank_account=bank_account or self.centre_bank_account)
        ref = SerialRef(serial=serial, kind="payout", target_id=payout.id, detail={"purpose": purpose})
        return payout, [payout, sequence, ref]

    def _payout_by_serial(self, serial: str) -> Payout:
        ref = self.find(SerialRef.create_id(serial))
        if ref is None or ref.kind != "payout":
            raise NotFoundError(f"no payout with serial {serial}", "serial")
        return self.repository.get(ref.target_id)

    def pending_payouts(self) -> list[Payout]:
        payouts = (self.repository.get(i) for i in self.ids_of("ledger.aggregates.documents:Payout.Instructed"))
        return [p for p in payouts if p.state == "INSTRUCTED"]

    def court_deduct(self, account_no: str, amount: str, value_date: date, document: str) -> dict[str, Any]:
        money = Money.parse(amount, "amount", positive=True)

        def body():
            account = self.account(account_no)
            posting_id = f"court:{document}"
            account.court_deduct(money, self.check_value_date(value_date), document, posting_id)
            payout, instructed = self.instruct_payout(posting_id, account_no, f"court:{document}", money, value_date,
                                                      "court-deduction")
            return {"account_no": account_no, "amount": str(money), "serial": payout.serial,
                    "balance": str(account.balance)}, [account, *instructed]
        return self.execute("court-deduct", f"court:{account_no}:{document}", {"amount": str(money)}, body)

    def recover(self, account_no: str, original_posting_id: str, value_date: date, reference: str) -> dict[str, Any]:
        """WD-3: a fraudulent withdrawal recovered by crediting it back (Dr 1001 / Cr 2001)."""
        def body():
            self.check_value_date(value_date)
            account = self.account(account_no)
            original = account.posting(original_posting_id)
            if original is None or original["kind"] != "withdrawal":
                raise NotFoundError(f"no withdrawal {original_posting_id} on this account", "posting")
            amount = Money(-original["amount"])
            journal = [{"account": f"1001.{self.centre_bank_account}", "side": "Dr", "amount": amount},
                       {"account": GL_FUND, "side": "Cr", "amount": amount}]
            account.credit_back(amount, value_date, f"recovery:{reference}", original_posting_id, "recovery", journal)
            member = self.load(Member, account.member_id, "account")
            member.record_fraud(reference=reference, value_date=value_date)
            return {"account_no": account_no, "recovered": str(amount), "state": account.state,
                    "balance": str(account.balance)}, [account, member]
        return self.execute("recover", f"recover:{reference}", {"posting": original_posting_id}, body)

    # -- corrections --------------------------------------------------------------------
    def reverse(self, account_no: str, posting_id: str, correction_date: date, reason: str) -> dict[str, Any]:
        """COR-1..3: mirror the original, original value date; adjust settled interest."""
        def body():
            self.check_value_date(correction_date, "correction_date")
            account = self.account(account_no)
            original = account.posting(posting_id)
            if original is None:
                raise NotFoundError(f"no posting {posting_id} on account {account_no}", "posting")
            payouts = self._cancel_payout_of(posting_id, original, reason)
            adjustment = self._interest_adjustment(account, posting_id, original)
            account.reverse(posting_id, f"rev:{posting_id}", correction_date, reason, adjustment)
            return {"account_no": account_no, "reversed": posting_id, "amount": str(Money(-original["amount"])),
                    "interest_adjustment": str(adjustment), "balance": str(account.balance)}, [account, *payouts]
        return self.execute("reverse", f"reverse:{account_no}:{posting_id}", {"reason": reason}, body)

    def _cancel_payout_of(self, posting_id: str, original: dict[str, Any], reason: str) -> list[Payout]:
        """A reversed debit (Dr 2101 mirrored) withdraws its payout instruction, or GL-2 breaks on 2101.

        Once the bank has answered, the money has left (recover it, WD-3) or come back already.
        """
        if original["kind"] not in ("withdrawal", "court-deduction"):
            return []
        payout = self.find(Payout.create_id(posting_id))
        if not isinstance(payout, Payout):
            return []
        if payout.state != "INSTRUCTED":
            raise ReversalError(f"the payout of {posting_id} is already {payout.state}; "
                                "recover the money instead (WD-3)", field="posting")
        payout.cancel(original["value_date"], reason)
        return [payout]

    def _interest_adjustment(self, account: FundAccount, posting_id: str, original: dict[str, Any],
                             without: bool = True) -> Money:
        """COR-3: what the account would have earned over its settled interest years without ``original``
        (or, with ``without=False``, with it: a posting value-dated into a settled year), less what it did
        earn: the settlements and every adjustment posted since.

        Every settled year is recomputed (a posting's money is carried into the next years too) and totals
        are compared, so earlier adjustments need no attribution to years; a year no posting changed
        recomputes to what it earned."""
        if account.horizon is not None:  # compact: only the last settlement is kept (ADR 0015)
            latest = max([account.horizon - timedelta(days=1), *(y["end"] for y in account.interest_years.values())])
            if original["value_date"] > latest:
                return ZERO
            raise account.needs_history("COR-3 over settled interest years")
        years = [y for y in account.interest_years.values() if not y["closing"]]
        if not years or original["value_date"] > max(year["end"] for year in years):
            return ZERO
        movements = [(d, a, k) for d, a, k, p in account.movements if not (without and p == posting_id)]
        owed = received = ZERO
        for year in years:
            policy = self.policy.at(year["end"])
            rates = [(r.effective_from, r.annual_rate) for r in policy.interest.rates]
            owed += compute_interest(policy.interest.method, movements, year["start"], year["end"], rates,
                                     policy.interest.daily_rate).interest
            received += year["interest"]
        received += Money.sum(Money(p["amount"]) for p in account.postings.values()
                              if p["kind"] == "interest-adjustment")
        return owed - received

    def adjust_backdated_interest(self, aggregates: Sequence[Any]) -> None:
        """COR-3 / MNY-4: a posting this command value-dated into an interest year already settled (a bank
        result or a receipt recorded after 30 June, dated before it) gets that year's interest adjusted on the
        recording day, so no member earns on money not held then, or misses interest on money that was."""
        for account in aggregates:
            if not isinstance(account, FundAccount) or not account.interest_years:
                continue
            for event in list(account.pending_events):
                posting_id = getattr(event, "posting_id", None)
                if type(event).__name__ in NOT_BACKDATED_POSTINGS or posting_id not in account.postings:
                    continue
                original = account.postings[posting_id]
                if original["kind"] in ("interest", "interest-adjustment", "reversal"):
                    continue
                amount = self._interest_adjustment(account, posting_id, original, without=False)
                account.adjust_interest(posting_id, self.today(), amount)

    # -- interest settlement -----------------------------------------------------------
    def settle_interest(self, year_end: date, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """INT-1: every open account earns for the year ending ``year_end`` (30 June), value-dated then."""
        policy = self.policy.at(year_end)
        start, end = interest_year(year_end, policy.interest.year_start_month)
        if end != year_end:
            raise LedgerRuleError(f"an interest year ends on {end}, not {year_end}", field="year_end", rule="INT-1")
        if self.today() <= end:
            raise LedgerRuleError(f"the year ending {end} is not over on {self.today()}", field="year_end",
                                  rule="INT-1")
        totals = {"accounts": 0, "settled": 0, "interest": ZERO, "skipped": 0}
        for batch in chunked(self.account_ids(), INTEREST_BATCH_SIZE):
            with gc_paused():  # a batch's objects live until its save: collecting them mid-batch finds nothing
                self._settle_batch(batch, end, policy, totals)
            if progress:
                progress(len(batch))
        return {"year_start": start.isoformat(), "year_end": end.isoformat(), "accounts": totals["accounts"],
                "settled": totals["settled"], "skipped": totals["skipped"], "interest": str(totals["interest"])}

    def _settle_batch(self, ids: Any, end: date, policy: PolicyVersion, totals: dict[str, Any]) -> None:
        def body():
            touched, batch_interest, settled, skipped = [], ZERO, 0, 0
            loaded = self.load_many(ids)
            for account_id in ids:
                account = loaded[account_id]
                year_key = str(interest_year(end, policy.interest.year_start_month)[0].year)
                done = account.interest_years.get(year_key)  # a closing may have settled it part-way only
                if account.state == CLOSED or (done and done["end"] >= end) or account.opened_on > end:
                    skipped += 1
                    continue
                result = self.interest_to(account, end, policy)
                account.settle_interest(result, f"int:{year_key}:{account.account_no}")
                touched.append(account)
                batch_interest, settled = batch_interest + result.interest, settled + 1
            return {"settled": settled, "skipped": skipped, "interest": str(batch_interest)}, touched
        result = self.execute("settle-interest", None, {}, body)
        totals["accounts"] += len(ids)
        totals["settled"] += result["settled"]
        totals["skipped"] += result["skipped"]
        totals["interest"] = totals["interest"] + Money(result["interest"])
