"""Loan use cases: application (LN-1), approval, disbursement, payments, prepayment, payoff,
waivers (LN-8), repricing (LN-2), reversal (COR-3), status and delinquency (LN-7).

An application writes a 'pending' mark on the borrower's and the spouse's
``Member`` aggregates in the same save as the loan, so two applications for
one couple at once conflict in the store and the retry sees the mark: one
outstanding loan or pending application per couple holds on every engine.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any, Callable, Iterable

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.fund_account import NORMAL, FundAccount
from ledger.aggregates.documents import LOAN_REFUND_PURPOSE
from ledger.aggregates.offset import OffsetRunLog
from ledger.aggregates.loan import (
    ACTIVE,
    APPLIED,
    APPROVED,
    BANK_SOURCES,
    CLOSED,
    FUND_SOURCES,
    SUSPENSE_SOURCE,
    Loan,
    LoanEligibilityError,
)
from ledger.aggregates.parties import Employer, Member
from ledger.application import NotFoundError, as_str, chunked, gc_paused, topic_of
from ledger.loan_book import ageing_bucket
from ledger.loan_math import EQUAL_INSTALMENT, EQUAL_PRINCIPAL, build_schedule, monthly_payment
from ledger.money import ZERO, Money, parse_rate
from ledger.policy import PolicyVersion

METHODS = (EQUAL_INSTALMENT, EQUAL_PRINCIPAL)
LOAN_BATCH_SIZE = 1000
DAILY_JOB = "daily-loan"  # the run log of the daily loan job (ledger.services.loan_days)
ANNUAL_RATE_MAX = Decimal("10")


def _previous_periods(day: date, count: int) -> list[str]:
    periods = []
    total = day.year * 12 + day.month - 1
    for back in range(1, count + 1):
        value = total - back
        periods.append(f"{value // 12:04d}-{value % 12 + 1:02d}")
    return periods


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


class LoanCommands:
    """Mixin on the ledger application: the loan use cases."""

    def loan(self, loan_no: str) -> Loan:
        return self.load(Loan, Loan.create_id(loan_no), "loan", loan_no)

    def loan_whole(self, loan_no: str) -> Loan:
        """The loan with its whole history (history mode, ADR 0015): statements, audits, tests."""
        self.loan(loan_no)  # a named NotFoundError when there is none
        return self.replay_whole(Loan.create_id(loan_no))

    def loan_ids(self) -> list[Any]:
        return self.ids_of(topic_of(Loan, "Applied"))

    # -- application (LN-1) ---------------------------------------------------------
    def apply_for_loan(self, id_number: str, principal: str, months: int, method: str, price: str,
                       monthly_income: str, applied_on: date, bank: str, second_home: bool = False,
                       idempotency_key: str | None = None) -> dict[str, Any]:
        amount = Money.parse(principal, "principal", positive=True)
        house_price = Money.parse(price, "price", positive=True)
        income = Money.parse(monthly_income, "monthly_income", positive=True)
        if method not in METHODS:
            raise LoanEligibilityError(f"method is one of {METHODS}", field="method", rule="LN-3")

        def body():
            borrower = self.member(id_number)
            spouse = self.find(borrower.spouse_id) if borrower.spouse_id else None
            policy = self.policy.at(applied_on)
            checks = self._eligibility(borrower, spouse, amount, months, house_price, income, applied_on,
                                       second_home, policy)
            sequence, (serial,) = self.take_serials("loan", applied_on)
            loan = Loan(loan_no=f"DK{serial}", borrower_id=borrower.id, spouse_id=spouse.id if spouse else None,
                        principal=amount, months=months, method=method, second_home=second_home, price=house_price,
                        monthly_income=income, bank=bank, card=borrower.card or {}, applied_on=applied_on,
                        eligibility=checks, borrower_name=borrower.name)
            for member in filter(None, (borrower, spouse)):
                member.mark_loan(loan_id=str(loan.id), mark="pending")
            result = {"loan_no": loan.loan_no, "state": loan.state, "principal": str(amount), "months": months,
                      "eligibility": as_str(checks)}
            return result, [loan, sequence, *filter(None, (borrower, spouse))]
        return self.execute("apply-loan", idempotency_key, {"id": id_number, "principal": str(amount)}, body)

    def _eligibility(self, borrower: Member, spouse: Member | None, amount: Money, months: int, price: Money,
                     income: Money, on: date, second_home: bool, policy: PolicyVersion) -> dict[str, Any]:
        rules = policy.loan
        for member in filter(None, (borrower, spouse)):
            if member.has_open_loan:
                raise LoanEligibilityError(f"{member.name} already has a fund loan or a pending application",
                                           field="id_number")
        account = self.account(borrower.account_no)
        if account.state != NORMAL:
            raise LoanEligibilityError(f"the borrower's account is {account.state}", field="id_number")
        self._check_continuous(borrower, account, on, rules.continuous_periods_required)
        retirement = policy.member.retirement_age_male if borrower.sex == "M" else policy.member.retirement_age_female
        age = _age_on(borrower.birth_date, on)
        self._check_term(age, months, retirement, rules)
        rate = rules.rate_on(on, months=months, second_home=second_home)
        parse_rate(rate, "annual_rate", maximum=ANNUAL_RATE_MAX)
        balances = account.balance
        if spouse is not None:
            spouse_account = self.find(FundAccount.create_id(spouse.account_no))
            balances = balances + (spouse_account.balance if spouse_account else ZERO)
        limits = {
            "city_cap": rules.cap_family if spouse is not None else rules.cap_single,
            "balance_multiple": balances.times(rules.balance_multiple),
            "loan_to_value": price.times(rules.loan_to_value_max / Decimal(100)),
        }
        instalment = monthly_payment(amount, months, rate)
        capacity = income.times(rules.income_share_max / Decimal(100))
        # compared unrounded: a limit rounded half up to the fen would let a borderline case through
        exact = {"city_cap": limits["city_cap"].amount, "balance_multiple": balances.amount * rules.balance_multiple,
                 "loan_to_value": price.amount * rules.loan_to_value_max / Decimal(100)}
        for name, limit in limits.items():
            if amount.amount > exact[name]:
                raise LoanEligibilityError(f"principal {amount} exceeds the {name.replace('_', ' ')} limit {limit}",
                                           field="principal")
        if instalment.amount > income.amount * rules.income_share_max / Decimal(100):
            raise LoanEligibilityError(f"instalment {instalment} exceeds {rules.income_share_max} % of income "
                                       f"({capacity})", field="monthly_income")
        return {**limits, "age": age, "retirement_age": retirement, "annual_rate": rate, "instalment": instalment,
                "capacity": capacity, "couple_balances": balances}

    def _check_continuous(self, member: Member, account: FundAccount, on: date, required: int) -> None:
        employer = self.find(member.employer_id)
        for period in _previous_periods(on, required):
            credited = "remittance" in account.credited_kinds(period) or account.credited_total(period) > ZERO
            deferred = isinstance(employer, Employer) and employer.is_deferred(period, on)
            if not (credited or deferred):
                raise LoanEligibilityError(f"period {period} is not credited: {required} continuous periods are "
                                           "required before the application month", field="id_number")

    def _check_term(self, age: int, months: int, retirement: int, rules: Any) -> None:
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= rules.term_months_max:
            raise LoanEligibilityError(f"term is 1..{rules.term_months_max} months", field="months")
        if age >= retirement:
            raise LoanEligibilityError(f"the borrower is {age}, at or past retirement age {retirement}",
                                       field="id_number")
        end_age = age + (months + 11) // 12
        if end_age > retirement + rules.retirement_extension_years:
            raise LoanEligibilityError(f"the loan ends at age {end_age}, after retirement + "
                                       f"{rules.retirement_extension_years}", field="months")
        if rules.age_plus_term_max and end_age > rules.age_plus_term_max:
            raise LoanEligibilityError(f"age + term {end_age} exceeds {rules.age_plus_term_max}", field="months")

    # -- approval and disbursement ---------------------------------------------------------
    def approve_loan(self, loan_no: str, on: date) -> dict[str, Any]:
        def body():
            loan = self.loan(loan_no)
            loan.approve(on)
            return {"loan_no": loan_no, "state": loan.state}, [loan]
        return self.execute("approve-loan", None, {}, body)

    def reject_loan(self, loan_no: str, on: date, reason: str) -> dict[str, Any]:
        def body():
            loan = self.loan(loan_no)
            loan.reject(on, reason)
            members = self._loan_members(loan)
            for member in members:
                member.mark_loan(loan_id=str(loan.id), mark="none")
            return {"loan_no": loan_no, "state": loan.state}, [loan, *members]
        return self.execute("reject-loan", None, {}, body)

    def _loan_members(self, loan: Loan) -> list[Member]:
        return [self.repository.get(i) for i in (loan.borrower_id, loan.spouse_id) if i is not None]

    def disburse_loan(self, loan_no: str, on: date, payee: str = "seller") -> dict[str, Any]:
        """Rate in force on disbursement (LN-2); Dr 1101 / Cr 2101 and a payout to the seller."""
        def body():
            self.check_value_date(on, "on")  # MNY-4: never after its recording
            loan = self.loan(loan_no)
            policy = self.policy.at(on)
            terms = self._terms(loan, on, policy)
            payout, instructed = self.instruct_payout(f"loan:{loan_no}", None, payee, loan.principal, on,
                                                      f"disbursement:{loan_no}")
            loan.disburse(on, terms, payout.serial)
            members = self._loan_members(loan)
            for member in members:
                member.mark_loan(loan_id=str(loan.id), mark="outstanding")
            first = loan.book.account(1).instalment
            return {"loan_no": loan_no, "state": loan.state, "annual_rate": str(terms["annual_rate"]),
                    "instalment": str(first.payment), "first_due_on": first.due_on.isoformat(),
                    "payout_serial": payout.serial}, [loan, *members, *instructed]
        return self.execute("disburse-loan", f"disburse:{loan_no}", {}, body)

    def _terms(self, loan: Loan, on: date, policy: PolicyVersion) -> dict[str, Any]:
        rules = policy.loan
        return {"principal": loan.principal, "months": loan.months, "method": loan.method, "disbursed_on": on,
                "annual_rate": rules.rate_on(on, months=loan.months, second_home=loan.second_home),
                "due_day": rules.due_day or None, "grace_days": rules.grace_days,
                "penalty_multiplier": rules.penalty_multiplier, "penalty_day_count": policy.time.penalty_day_count,
                "prepayment_day_count": policy.time.prepayment_day_count,
                "prepayment_blackout_days": rules.prepayment_blackout_days,
                "prepayment_minimum": rules.prepayment_minimum}

    # -- money in ---------------------------------------------------------------------------
    def pay_loan(self, loan_no: str, amount: str, on: date, source: str, reference: str) -> dict[str, Any]:
        """A repayment by card, API or at the counter (Dr 1001 / Cr 4002, 1102, 1101; excess 2102)."""
        money = Money.parse(amount, "amount", positive=True)
        if source not in BANK_SOURCES:
            raise LedgerRuleError(f"source is one of {BANK_SOURCES}", field="source", rule="LN-5")

        def body():
            self.check_value_date(on, "on")
            loan = self.loan(loan_no)
            self.check_repayment_ceiling(loan, money, on)
            figures = loan.pay(money, on, source, reference, self.centre_bank_account)
            return {"loan_no": loan_no, "amount": str(money), **as_str(figures)}, [loan]
        return self.execute("pay-loan", f"loan-payment:{reference}", {"loan": loan_no, "amount": str(money),
                                                                      "on": on.isoformat(), "source": source}, body)

    def check_repayment_ceiling(self, loan: Loan, money: Money, on: date) -> Money:
        """Issue 16: a repayment is at most what can be owed (outstanding principal + amount due) plus the
        policy's plausible excess (⚙ limits), checked before anything is written."""
        owed = ZERO
        if loan.state == ACTIVE:
            book = loan.book
            owed = book.outstanding_principal + book.amount_due(max(on, book.last_on))
        return self.policy.at(on).limits.check_repayment(money, owed)

    def prepay_loan(self, loan_no: str, principal: str, on: date, mode: str, reference: str,
                    source: str = "counter") -> dict[str, Any]:
        money = Money.parse(principal, "principal", positive=True)

        def body():
            self.check_value_date(on, "on")
            loan = self.loan(loan_no)
            self._check_no_debit_submitted(loan)
            figures = loan.prepay(money, on, mode, source, reference, self.centre_bank_account)
            return {"loan_no": loan_no, **as_str(figures)}, [loan]
        return self.execute("prepay-loan", f"prepay:{reference}", {"loan": loan_no, "principal": str(money)}, body)

    # -- suspense (BNK-5) ----------------------------------------------------------------------
    def loan_suspense(self, loan_no: str, as_of: date) -> dict[str, Any]:
        """Loan money held in suspense (2102) on ``as_of``, with the payments and refunds that moved it."""
        loan = self.loan_whole(loan_no)
        moves = [{"on": p["on"].isoformat(), "kind": "excess", "reference": p["reference"],
                  "amount": str(p["figures"]["excess"])}
                 for p in loan.payments if not p["reversed"] and not p["figures"]["excess"].is_zero]
        moves += [{"on": p["on"].isoformat(), "kind": "applied", "reference": p["reference"],
                   "amount": str(-p["amount"])} for p in loan.payments
                  if not p["reversed"] and p["source"] == SUSPENSE_SOURCE]
        for refund in getattr(loan, "refunds", []):
            moves.append({"on": refund["on"].isoformat(), "kind": "refunded", "reference": refund["reference"],
                          "amount": str(-refund["amount"]), "payout_serial": refund["payout_serial"]})
            if refund["failed_on"] is not None:
                moves.append({"on": refund["failed_on"].isoformat(), "kind": "refund-failed",
                              "reference": refund["reference"], "amount": str(refund["amount"])})
        return {"loan_no": loan_no, "as_of": as_of.isoformat(), "held": str(loan.suspense_held(as_of)),
                "moves": sorted(moves, key=lambda m: m["on"])}

    def apply_loan_suspense(self, loan_no: str, amount: str, on: date, reference: str) -> dict[str, Any]:
        """Apply money the loan holds in suspense to its amount due (Dr 2102 / Cr 4002, 1102, 1101)."""
        money = Money.parse(amount, "amount", positive=True)

        def body():
            self.check_value_date(on, "on")
            loan = self.loan(loan_no)
            self._check_no_debit_submitted(loan)
            figures = loan.pay(money, on, SUSPENSE_SOURCE, reference, self.centre_bank_account)
            return {"loan_no": loan_no, "amount": str(money), **as_str(figures),
                    "held": str(loan.suspense_held(on))}, [loan]
        return self.execute("apply-loan-suspense", f"suspense-apply:{loan_no}:{reference}",
                            {"amount": str(money), "on": on.isoformat()}, body)

    def refund_loan_suspense(self, loan_no: str, amount: str, on: date, reference: str) -> dict[str, Any]:
        """Pay loan suspense back to the borrower: Dr 2102 / Cr 2101 and a payout instruction (BNK-5)."""
        money = Money.parse(amount, "amount", positive=True)

        def body():
            self.check_value_date(on, "on")
            loan = self.loan(loan_no)
            posting_id = f"loan-refund:{loan_no}:{reference}"
            payout, instructed = self.instruct_payout(posting_id, None, loan.borrower_name or loan_no, money, on,
                                                      LOAN_REFUND_PURPOSE)
            loan.refund_suspense(money, on, reference, posting_id, payout.serial)
            return {"loan_no": loan_no, "amount": str(money), "serial": payout.serial,
                    "held": str(loan.suspense_held(on))}, [loan, *instructed]
        return self.execute("refund-loan-suspense", f"suspense-refund:{loan_no}:{reference}",
                            {"amount": str(money), "on": on.isoformat()}, body)

    def _check_no_debit_submitted(self, loan: Loan) -> None:
        """LN-6: no card debit SUBMITTED (filled in by the offset service when it exists)."""
        check = getattr(self, "live_debit_state", None)
        if check is not None and check(loan) == "SUBMITTED":
            raise LedgerRuleError("a card debit is SUBMITTED for this loan", field="loan", rule="LN-6")

    def pay_off_loan(self, loan_no: str, on: date, reference: str, source: str = "counter") -> dict[str, Any]:
        def body():
            self.check_value_date(on, "on")
            loan = self.loan(loan_no)
            self._check_no_debit_submitted(loan)
            figures = loan.pay_off(on, source, reference, self.centre_bank_account)
            members = self._loan_members(loan)
            for member in members:
                member.mark_loan(loan_id=str(loan.id), mark="none")
            ended = self._end_mandate_on_close(loan, on) if hasattr(self, "_end_mandate_on_close") else []
            return {"loan_no": loan_no, "state": loan.state, **as_str(figures)}, [loan, *members, *ended]
        return self.execute("pay-off-loan", f"payoff:{reference}", {"loan": loan_no}, body)

    def payoff_quote(self, loan_no: str, on: date) -> dict[str, Any]:
        loan = self.loan(loan_no)
        quote = loan.book.payoff_quote(on)
        return {"loan_no": loan_no, "on": on.isoformat(), "amount_due": str(quote.amount_due),
                "principal": str(quote.principal), "interest": str(quote.interest), "total": str(quote.total)}

    def reverse_loan_payment(self, loan_no: str, allocation: int, on: date, reason: str) -> dict[str, Any]:
        def body():
            self.check_value_date(on, "on")
            loan = self.loan(loan_no)
            paid = loan.payment_of(allocation)
            payer = self._fund_payer_of(loan, paid) if paid is not None and paid["source"] in FUND_SOURCES else None
            if paid is not None and paid["source"] not in BANK_SOURCES and payer is None:
                # The mirrored journal credits 2001 (or debits 4002 back): reversing it without crediting
                # the payer's fund account back would break GL-2. A ledger that is wrong must stop.
                raise LedgerRuleError(f"allocation {allocation} was paid from {paid['source']} and its fund "
                                      "debit is not found", field="allocation", rule="COR-1")
            result = loan.reverse_payment(allocation, on, reason)
            touched: list[Any] = [loan]
            if payer is not None:  # the fund money goes back to the payer's account (Cr 2001 on the loan)
                original = payer.posting(paid["reference"])
                adjustment = self._interest_adjustment(payer, paid["reference"], original)
                payer.reverse_loan_debit(paid["reference"], on, reason, adjustment)
                result["account_no"] = payer.account_no
                result["interest_adjustment"] = adjustment
                touched.append(payer)
            return {"loan_no": loan_no, **as_str(result)}, touched
        return self.execute("reverse-loan-payment", f"reverse-loan:{loan_no}:{allocation}", {}, body)

    def _fund_payer_of(self, loan: Loan, paid: dict[str, Any]) -> FundAccount | None:
        """The fund account a fund-sourced payment was debited from: the deduction's part whose posting
        is the payment's reference."""
        for account_no in self._payer_accounts(loan):
            account = self.find(FundAccount.create_id(account_no))
            if isinstance(account, FundAccount) and account.posting(paid["reference"]) is not None:
                return account
        return None

    def _payer_accounts(self, loan: Loan) -> list[str]:
        members = [self.find(loan.borrower_id)] + ([self.find(loan.spouse_id)] if loan.spouse_id else [])
        return [m.account_no for m in members if isinstance(m, Member)]

    # -- waivers (LN-8) ----------------------------------------------------------------------
    def declare_waiver(self, scope: str, start_on: date, end_on: date, declared_on: date, loan_no: str | None = None,
                       employer_code: str | None = None) -> dict[str, Any]:
        """不作逾期处理 for one loan, one employer's members, or all loans; may be declared late."""
        if end_on < start_on:
            raise LedgerRuleError("the waiver ends before it starts", field="end_on", rule="LN-8")
        self.check_value_date(declared_on, "declared_on")  # MNY-4
        targets = self._waiver_targets(scope, loan_no, employer_code)
        applied, refunds = 0, ZERO
        for batch in chunked(targets, LOAN_BATCH_SIZE):
            def body(batch=batch):
                touched, count, refund_total = [], 0, ZERO
                for loan in self.load_many(batch).values():
                    if loan.state != ACTIVE:
                        continue
                    figures = loan.waive(start_on, end_on, declared_on, scope)
                    refund = figures["penalty_refund"]
                    if refund > ZERO:  # penalty already paid for covered days goes back to the loan
                        loan.pay(refund, declared_on, "penalty-refund", f"waiver:{declared_on}",
                                 self.centre_bank_account)
                        refund_total = refund_total + refund
                    touched.append(loan)
                    count += 1
                return {"applied": count, "refunded": str(refund_total)}, touched
            key = f"waiver:{scope}:{loan_no or employer_code or 'all'}:{start_on}:{end_on}:{batch[0]}"
            result = self.execute("declare-waiver", key, {"declared_on": declared_on.isoformat()}, body)
            applied, refunds = applied + result["applied"], refunds + Money(result["refunded"])
        return {"scope": scope, "start_on": start_on.isoformat(), "end_on": end_on.isoformat(), "loans": applied,
                "penalty_refunded": str(refunds)}

    def _waiver_targets(self, scope: str, loan_no: str | None, employer_code: str | None) -> list[Any]:
        if scope == "loan":
            if not loan_no:
                raise LedgerRuleError("a loan waiver names the loan", field="loan", rule="LN-8")
            return [self.loan(loan_no).id]
        ids = self.loan_ids()
        if scope == "all":
            return ids
        if scope == "employer":
            employer = self.employer(employer_code or "")
            loans = self.load_many(ids).values()
            borrowers = self.load_many(l.borrower_id for l in loans)
            return [l.id for l in loans if borrowers[l.borrower_id].employer_id == employer.id]
        raise LedgerRuleError("scope is loan, employer or all", field="scope", rule="LN-8")

    # -- daily jobs: interest falling due, ageing, default; yearly repricing --------------------
    def daily_loan_update(self, on: date, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Recognise the interest that fell due (Dr 1102 / Cr 4001) and raise LoanDefaulted (LN-7)."""
        from ledger.services.loan_days import loans_to_look_at

        totals = {"loans": 0, "accrued": 0, "defaulted": 0}
        rules = self.policy.at(on).loan
        start_position = self.recorder.max_notification_id() or 0  # what changes after it, the next run sees
        log = self.find(OffsetRunLog.create_id(DAILY_JOB))
        last = log.last_completed if log is not None else None
        position = (log.reports.get(last.isoformat()) or {}).get("position") if last is not None else None
        chosen = loans_to_look_at(self, on, last, position)
        ids = self.loan_ids() if chosen is None else chosen
        totals["looked_at"] = "all" if chosen is None else "due"
        for batch in chunked(ids, LOAN_BATCH_SIZE):
            def body(batch=batch):
                touched, accrued, defaulted = [], 0, 0
                for loan in self.load_many(batch).values():
                    if loan.state != ACTIVE:
                        continue
                    before = len(loan.pending_events)
                    loan.accrue(on)
                    accrued += len(loan.pending_events) > before
                    status = loan.book.status(max(on, loan.book.last_on))
                    if loan.defaulted_on is None and (status.missed_in_a_row >= rules.missed_in_row_max
                                                      or status.missed_total >= rules.missed_total_max):
                        loan.mark_defaulted(on=on, missed_in_a_row=status.missed_in_a_row,
                                            missed_total=status.missed_total)
                        defaulted += 1
                    if loan.pending_events:
                        touched.append(loan)
                return {"accrued": accrued, "defaulted": defaulted}, touched
            with gc_paused():  # a batch's objects live until its save: collecting them mid-batch finds nothing
                result = self.execute("daily-loan-update", None, {}, body)
            totals["loans"] += len(batch)
            totals["accrued"] += result["accrued"]
            totals["defaulted"] += result["defaulted"]
            if progress:
                progress(len(batch))
        self._complete_daily(on, totals, start_position)
        return {"on": on.isoformat(), **totals}

    def _complete_daily(self, on: date, totals: dict[str, Any], position: int) -> None:
        """The run is recorded with the log position it started at: the next run looks at what changed since."""
        def body():
            log = self.find(OffsetRunLog.create_id(DAILY_JOB)) or OffsetRunLog(name=DAILY_JOB, first_date=on)
            if log.last_completed is not None and log.last_completed >= on:
                return {}, []
            log.complete(run_date=on, report={**totals, "position": position})
            return {}, [log]
        self.execute("complete-daily-loan-update", None, {}, body)

    def reprice_loans(self, on: date) -> dict[str, Any]:
        """LN-2: every 1 January, loans over one year move to the rate in force that day for their tier."""
        if (on.month, on.day) != (1, 1):
            raise LedgerRuleError("repricing runs on 1 January", field="on", rule="LN-2")
        policy = self.policy.at(on)
        repriced = 0
        for batch in chunked(self.loan_ids(), LOAN_BATCH_SIZE):
            def body(batch=batch):
                touched = []
                for loan in self.load_many(batch).values():
                    if loan.state != ACTIVE or loan.months <= 12 or loan.disbursed_on >= on:
                        continue  # a loan disbursed since took the rate in force on its disbursement
                    rate = policy.loan.rate_on(on, months=loan.months, second_home=loan.second_home)
                    if loan.reprice(rate, on) is not None:
                        touched.append(loan)
                return {"repriced": len(touched)}, touched
            repriced += self.execute("reprice-loans", f"reprice:{on}:{batch[0]}", {}, body)["repriced"]
        return {"on": on.isoformat(), "repriced": repriced}

    # -- queries ----------------------------------------------------------------------------------
    def loan_status(self, loan_no: str, as_of: date) -> dict[str, Any]:
        return self.with_history(lambda: self._loan_status(loan_no, as_of))

    def _loan_status(self, loan_no: str, as_of: date) -> dict[str, Any]:
        loan = self.loan(loan_no)
        if loan.state not in (ACTIVE, CLOSED) or loan.disbursed_on is None or as_of < loan.disbursed_on:
            return {"loan_no": loan_no, "state": loan.state, "as_of": as_of.isoformat()}
        book = loan.book_as_of(as_of)
        status = book.status(max(as_of, book.last_on))
        upcoming = book.first_after(as_of)
        due = book.accounts_through(as_of)
        paid = [a for a in due if a.cleared]
        return {
            "loan_no": loan_no, "state": loan.state, "as_of": as_of.isoformat(), "principal": str(loan.principal),
            "annual_rate": str(book.last_rate),
            "outstanding_principal": str(status.outstanding_principal), "amount_due": str(status.amount_due),
            "interest_due": str(status.interest_due), "principal_due": str(status.principal_due),
            "penalty_unpaid": str(status.penalty_unpaid), "penalty_accrued": str(status.penalty_uncrystallised),
            "instalments_paid": book.pruned.count + len(paid), "instalments_due": book.pruned.count + len(due),
            "instalments_overdue": list(status.overdue_numbers), "days_past_due": status.days_past_due,
            "bucket": status.ageing_bucket, "missed_in_a_row": status.missed_in_a_row,
            "missed_total": status.missed_total,
            "defaulted": loan.defaulted_on is not None and loan.defaulted_on <= as_of,
            "next_due_on": upcoming.due_on.isoformat() if upcoming else None,
            "next_amount": str(upcoming.unpaid) if upcoming else "0.00",
        }

    def delinquent_loans(self, as_of: date) -> dict[str, Any]:
        buckets: dict[str, list[dict[str, Any]]] = {"1-30": [], "31-60": [], "61-90": [], "91+": []}
        for batch in chunked(self.loan_ids(), LOAN_BATCH_SIZE):
            for loan in self.load_many(batch).values():
                if loan.disbursed_on is None or as_of < loan.disbursed_on:
                    continue
                if loan.state != ACTIVE and not (loan.closed_on is not None and loan.closed_on > as_of):
                    continue  # a loan closed later was still owed on an earlier date (MNY-4 as-of)
                status = self.as_of(loan, lambda whole: _status_as_of(whole, as_of))
                if status.ageing_bucket:
                    buckets[status.ageing_bucket].append({
                        "loan_no": loan.loan_no, "days_past_due": status.days_past_due,
                        "amount_due": str(status.amount_due), "penalty_accrued": str(status.penalty_uncrystallised)})
        return {"as_of": as_of.isoformat(), "buckets": buckets,
                "counts": {name: len(rows) for name, rows in buckets.items()}}

    def loan_subledger(self, day: date) -> dict[str, Money]:
        """GL-2 sub-ledgers as of ``day``: Σ outstanding principal (1101), Σ recognised unpaid interest
        (1102) and Σ loan money held in suspense (2102)."""
        totals = {"principal": ZERO, "interest": ZERO, "suspense": ZERO}
        for batch in chunked(self.loan_ids(), LOAN_BATCH_SIZE):
            for loan in self.load_many(batch).values():
                for name, amount in self.as_of(loan, lambda whole: whole.subledger_as_of(day)).items():
                    totals[name] = totals[name] + amount
        return totals


def _status_as_of(loan: Loan, as_of: date) -> Any:
    book = loan.book_as_of(as_of)
    return book.status(max(as_of, book.last_on))


def schedule_rows(principal: str, months: int, annual_rate: str, method: str, disbursed_on: date) -> list[dict[str, str]]:
    """``gjj loan schedule``: a pure calculation (LN-3, LN-4), no database."""
    if method not in METHODS:
        raise LoanEligibilityError(f"method is one of {METHODS}", field="method", rule="LN-3")
    rate = parse_rate(annual_rate, "annual_rate", maximum=ANNUAL_RATE_MAX)
    rows = build_schedule(Money.parse(principal, "principal", positive=True), months, rate, method, disbursed_on)
    return [{"number": r.number, "due_on": r.due_on.isoformat(), "principal": str(r.principal),
             "interest": str(r.interest), "payment": str(r.payment), "outstanding": str(r.outstanding)} for r in rows]
