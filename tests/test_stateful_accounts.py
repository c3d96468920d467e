"""Random sequences of fund-account commands keep the books right (GL-2 after every step).

A hypothesis state machine opens accounts, remits (register + receive, paid exactly, short,
over or without a serial), withdraws, closes by withdrawal, answers payouts, seals, unseals,
freezes, unfreezes, closes, deducts by court order, reverses and settles interest, while the
clock moves on. A refused command must be a domain error (``LedgerRuleError`` or
``MoneyError``) and must save nothing. After every step: no balance is negative as of any
date, each account agrees with a model kept here, fund liability (2001) = Σ balances, the
trial balance has no difference, ``check_books()`` is ok now and as of earlier dates, and
every account replayed by a second Ledger on the same store equals the one the first sees.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.fund_account import CLOSED, NORMAL, SEALED, FundAccount
from ledger.aggregates.fund_compact import decision_state
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock
from ledger.interest import daily_product_interest, interest_year
from ledger.money import ZERO, Money, MoneyError
from ledger.sampledata import credit_code, resident_id
from ledger.services.accounts import share
from ledger.services.contributions import RemittanceLine
from ledger.storage import drop_postgres_schema, parse_database_url

START = datetime(2024, 5, 20, 10, 0, tzinfo=CHINA_TZ)
CENTRE_ACCOUNT = "3100000001"
ACCOUNTS_MAX = 4
BASES = ("2330.00", "5000.00", "7777.00", "32969.00")
RATES = [(date(2016, 2, 21), Decimal("1.50"))]
REFUSALS = (LedgerRuleError, MoneyError)

SQLITE_SETTINGS = settings(max_examples=25, stateful_step_count=20, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
POSTGRES_SETTINGS = settings(max_examples=8, stateful_step_count=15, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass
class Model:
    """What the test expects of one account, kept from the commands' own results."""

    id_number: str
    balance: Money = ZERO
    state: str = NORMAL
    freezes: dict[str, str] = field(default_factory=dict)  # document -> authority


class FundAccountMachine(RuleBasedStateMachine):
    """The ledger under random commands; ``open_store`` gives it a scratch store."""

    def __init__(self) -> None:
        super().__init__()
        self.url, self.drop = self.open_store()
        self.clock = FixedClock(START)
        self.ledger = Ledger(self.url, clock=self.clock)
        # snapshots every few events: commands run on compact accounts and reach back through history mode
        self.ledger.snapshotting_intervals = {FundAccount: 3}
        self.replay = Ledger(self.url, clock=self.clock)  # a second reader: replays from the store
        self.employer = credit_code(1)
        self.models: dict[str, Model] = {}
        self.pending: list[tuple[str, str, Money, str]] = []  # (serial, account, amount, posting) awaiting the bank
        self.counter = 0
        self.settled_years: set[date] = set()

    def open_store(self) -> tuple[str, Callable[[], None]]:
        folder = tempfile.mkdtemp(prefix="gjj-stateful-")
        return f"sqlite:///{folder}/ledger.sqlite3", lambda: shutil.rmtree(folder, ignore_errors=True)

    def teardown(self) -> None:
        self.replay.close()
        self.ledger.close()
        self.drop()

    # -- helpers ------------------------------------------------------------------------------
    def next(self) -> int:
        self.counter += 1
        return self.counter

    @property
    def today(self) -> date:
        return self.ledger.today()

    def pick(self, index: int) -> str:
        accounts = sorted(self.models)
        return accounts[index % len(accounts)]

    def back(self, account_no: str, days_back: int) -> date:
        """A value date up to ``days_back`` before today, not before the account opened."""
        opened = self.ledger.account(account_no).opened_on
        return max(self.today - timedelta(days=days_back), opened)

    def attempt(self, command: Callable[[], Any], expect_ok: bool | None = None) -> Any | None:
        """Run a command; a refusal must be a domain error that saved nothing."""
        head = self.ledger.recorder.max_notification_id()
        try:
            result = command()
        except REFUSALS as exc:
            assert self.ledger.recorder.max_notification_id() == head, f"a refused command saved events: {exc}"
            assert expect_ok is not True, f"refused although the model allows it: {exc!r}"
            event(f"refused {type(exc).__name__}")
            return None
        assert expect_ok is not False, f"accepted although the model refuses it: {result}"
        event("accepted")
        return result

    # -- set-up -----------------------------------------------------------------------------------
    @initialize(bases=st.lists(st.sampled_from(BASES), min_size=1, max_size=2))
    def open_employer_with_paid_up_staff(self, bases: list[str]) -> None:
        """Start from members with money: each base credited for 2024-03 and 2024-04."""
        self.ledger.open_employer(self.employer, "状态机单位", "6222000011112222", self.today, ratio="12",
                                  from_period="2024-01")
        for base in bases:
            self.open_account(base, male=len(self.models) % 2 == 0)
        for period in ("2024-03", "2024-04"):
            for account_no in sorted(self.models):
                self.remit_period(account_no, period, "remittance", "exact", self.today)

    # -- rules --------------------------------------------------------------------------------------
    @precondition(lambda self: len(self.models) < ACCOUNTS_MAX)
    @rule(base=st.sampled_from(BASES), male=st.booleans())
    def open_account(self, base: str, male: bool) -> None:
        number = resident_id(date(1980, 1, 1) + timedelta(days=self.next() * 37), self.counter, male)
        self.ledger.open_member(number, f"职工{self.counter}", self.employer, self.today)
        opened = self.ledger.open_account(number, self.today, base=base, from_period="2024-01")
        self.models[opened["account_no"]] = Model(number)

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1), months_back=st.integers(0, 2),
          kind=st.sampled_from(["remittance", "remittance", "back-payment"]),
          payment=st.sampled_from(["exact", "exact", "over", "short", "no-serial"]), days_back=st.integers(0, 3))
    def remit(self, index: int, months_back: int, kind: str, payment: str, days_back: int) -> None:
        account_no = self.pick(index)
        first = self.today.replace(day=1)
        for _ in range(months_back):
            first = (first - timedelta(days=1)).replace(day=1)
        self.remit_period(account_no, f"{first:%Y-%m}", kind, payment, self.back(account_no, days_back))

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1), payment=st.sampled_from(["exact", "over"]))
    def remit_this_month(self, index: int, payment: str) -> None:
        """The common case, drawn more often: this month's remittance paid in full today."""
        account_no = self.pick(index)
        self.remit_period(account_no, f"{self.today:%Y-%m}", "remittance", payment, self.today)

    def remit_period(self, account_no: str, period: str, kind: str, payment: str, value_date: date) -> None:
        first = date(int(period[:4]), int(period[5:]), 1)
        account = self.ledger.account(account_no)
        ratios = self.ledger.employer(self.employer).ratios_for(period)
        base = account.base_for(period)
        assert base is not None and ratios is not None
        rounding = self.ledger.policy.at(first).contribution.share_rounding
        line = RemittanceLine(1, account_no, base, share(base, ratios[0], rounding), share(base, ratios[1], rounding))
        head = self.ledger.recorder.max_notification_id()
        adjusted_before = self.adjustments(account_no)
        document = self.ledger.register_remittance(self.employer, period, kind, f"D{self.next()}", [line], self.today)
        if document["accepted"] == 0:
            assert self.ledger.recorder.max_notification_id() == head
            return
        total = Money(document["total"])
        amount = {"exact": total, "over": total + Money("10.00"), "short": total - Money("0.01"),
                  "no-serial": total}[payment]
        serial = "" if payment == "no-serial" else document["serial"]
        receipt = self.attempt(lambda: self.ledger.receive("ICBC", f"{value_date:%Y%m%d}", f"H{self.next()}",
                                                           CENTRE_ACCOUNT, str(amount), value_date, serial))
        if receipt is None:
            return
        applied = Money(receipt["applied"])
        assert applied == (total if payment in ("exact", "over") else ZERO)
        assert Money(receipt["suspense"]) == amount - applied
        # COR-3: money value-dated into an interest year already settled earns that year's interest on arrival
        self.models[account_no].balance += applied + (self.adjustments(account_no) - adjusted_before)

    def adjustments(self, account_no: str) -> Money:
        """Σ COR-3 interest adjustments on the account (its whole history)."""
        whole = self.ledger.account_whole(account_no)
        return Money(sum((m[1] for m in whole.movements if m[2] == "interest-adjustment"), Decimal(0)))

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1), days_back=st.integers(0, 3),
          amount=st.one_of(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("4000"), places=2),
                           st.just("available")))
    def withdraw(self, index: int, days_back: int, amount: Decimal | str) -> None:
        account_no = self.pick(index)
        if amount == "available":
            amount = self.ledger.balance(account_no)["available"]
        value_date = self.back(account_no, days_back)
        result = self.attempt(lambda: self.ledger.withdraw(account_no, "other", str(amount), value_date,
                                                           {"purpose": "状态机"}, f"wd-{self.next()}"),
                              expect_ok=False if self.models[account_no].state == CLOSED else None)
        if result is not None:
            self.models[account_no].balance -= Money(result["amount"])
            self.pending.append((result["serial"], account_no, Money(result["amount"]), result["posting_id"]))

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1))
    def close_by_withdrawal(self, index: int) -> None:
        account_no = self.pick(index)
        model = self.models[account_no]
        result = self.attempt(lambda: self.ledger.withdraw(account_no, "retirement", None, self.today,
                                                           {"retirement_date": self.today.isoformat()},
                                                           f"wd-{self.next()}"),
                              expect_ok=False if model.state == CLOSED or model.freezes else None)
        if result is not None:
            assert Money(result["amount"]) == model.balance + Money(result["interest"])
            model.balance, model.state = ZERO, CLOSED
            if result["serial"]:  # an empty account closes without a payout
                self.pending.append((result["serial"], account_no, Money(result["amount"]),
                                     result["posting_id"]))

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(0, 20), paid=st.booleans())
    def bank_answers(self, index: int, paid: bool) -> None:
        serial, account_no, amount, _posting = self.pending.pop(index % len(self.pending))
        reference = f"ICBC/{self.today:%Y%m%d}/R{self.next()}"
        self.attempt(lambda: self.ledger.settle_payout(serial, paid, self.today, reference), expect_ok=True)
        if not paid:
            model = self.models[account_no]
            model.balance += amount
            model.state = SEALED if model.state == CLOSED else model.state

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1))
    def seal(self, index: int) -> None:
        account_no = self.pick(index)
        model = self.models[account_no]
        if self.attempt(lambda: self.ledger.seal(account_no, self.today), expect_ok=model.state == NORMAL):
            model.state = SEALED

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1))
    def unseal(self, index: int) -> None:
        account_no = self.pick(index)
        model = self.models[account_no]
        if self.attempt(lambda: self.ledger.unseal(account_no, self.today), expect_ok=model.state == SEALED):
            model.state = NORMAL

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1), authority=st.sampled_from(["court", "centre"]),
          amount=st.one_of(st.none(), st.sampled_from(["100.00", "1000.00", "5000.00"])))
    def freeze(self, index: int, authority: str, amount: str | None) -> None:
        account_no = self.pick(index)
        model = self.models[account_no]
        document = f"冻{self.next()}"
        done = self.attempt(lambda: self.ledger.freeze(account_no, authority, document, self.today, amount=amount),
                            expect_ok=model.state != CLOSED)
        if done:
            model.freezes[document] = authority

    @precondition(lambda self: any(m.freezes for m in self.models.values()))
    @rule(index=st.integers(0, 20), same_authority=st.booleans())
    def unfreeze(self, index: int, same_authority: bool) -> None:
        frozen = sorted((no, doc, auth) for no, m in self.models.items() for doc, auth in m.freezes.items())
        account_no, document, authority = frozen[index % len(frozen)]
        lifting = authority if same_authority else {"court": "centre", "centre": "court"}[authority]
        done = self.attempt(lambda: self.ledger.unfreeze(account_no, lifting, document, f"解{self.next()}",
                                                         self.today), expect_ok=same_authority)
        if done:
            del self.models[account_no].freezes[document]

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1))
    def close(self, index: int) -> None:
        account_no = self.pick(index)
        model = self.models[account_no]
        allowed = model.state != CLOSED and model.balance.is_zero
        if self.attempt(lambda: self.ledger.close_account(account_no, "transfer-out", self.today),
                        expect_ok=allowed):
            model.state = CLOSED

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1),
          amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3000"), places=2))
    def court_deduction(self, index: int, amount: Decimal) -> None:
        account_no = self.pick(index)
        document = f"执{self.next()}号"
        result = self.attempt(lambda: self.ledger.court_deduct(account_no, str(amount), self.today, document))
        if result is not None:
            self.models[account_no].balance -= Money(amount)
            self.pending.append((result["serial"], account_no, Money(amount), f"court:{document}"))

    @precondition(lambda self: self.models)
    @rule(index=st.integers(0, ACCOUNTS_MAX - 1), which=st.integers(0, 50))
    def reverse(self, index: int, which: int) -> None:
        account_no = self.pick(index)
        account = self.ledger.account(account_no)
        candidates = [pid for pid, p in account.postings.items()
                      if p["kind"] in ("remittance", "back-payment", "withdrawal") and not p["reversed"]]
        if not candidates:
            return
        posting_id = candidates[which % len(candidates)]
        original = account.postings[posting_id]
        result = self.attempt(lambda: self.ledger.reverse(account_no, posting_id, self.today, "状态机冲正"))
        if result is not None:
            self.models[account_no].balance += Money(-original["amount"]) + Money(result["interest_adjustment"])
            self.pending = [p for p in self.pending if p[3] != posting_id]  # its payout instruction is withdrawn

    def last_year_end(self) -> date:
        return date(self.today.year if self.today.month >= 7 else self.today.year - 1, 6, 30)

    @precondition(lambda self: self.last_year_end() not in self.settled_years)
    @rule()
    def settle_interest(self) -> None:
        year_end = self.last_year_end()
        self.settled_years.add(year_end)
        start = interest_year(year_end)[0]
        before = {no: self.ledger.account_whole(no) for no in self.models}
        result = self.attempt(lambda: self.ledger.settle_interest(year_end), expect_ok=self.today > year_end)
        if result is None:
            return
        for account_no, old in before.items():
            new = self.ledger.account(account_no)
            earned = new.balance - old.balance
            part = old.interest_years.get(str(start.year))  # a closing may have settled the year part-way
            if (part and part["end"] >= year_end) or old.state == CLOSED or old.opened_on > year_end:
                assert earned.is_zero
                continue
            first = part["end"] + timedelta(days=1) if part else start
            expected = daily_product_interest(old.interest_movements(), first, year_end, RATES).interest
            assert earned == expected, (account_no, earned, expected)
            self.models[account_no].balance += earned

    @rule(days=st.integers(1, 75))
    def advance(self, days: int) -> None:
        self.clock.set_day(self.today + timedelta(days=days), hour=10)

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def accounts_agree_with_the_model_and_never_go_negative(self) -> None:
        for account_no, model in self.models.items():
            account = self.ledger.account(account_no)
            assert account.balance == model.balance, (account_no, account.balance, model.balance)
            assert account.state == model.state, (account_no, account.state, model.state)
            assert sorted(f.split(":", 1)[1] for f in account.freezes) == sorted(model.freezes)
            account = self.ledger.account_whole(account_no)  # every movement since opening (ADR 0015)
            for day in {m[0] for m in account.movements}:
                assert account.balance_as_of(day) >= ZERO, (account_no, day, account.balance_as_of(day))
            if account.state == CLOSED:
                assert account.balance.is_zero

    @invariant()
    def the_books_balance_and_agree_with_the_subledgers(self) -> None:
        trial = self.ledger.trial_balance()
        assert trial.difference.is_zero, trial.as_dict()
        balances = Money.sum(self.ledger.account(no).balance for no in self.models)
        assert trial.balance("2001") == balances
        for as_of in (None, self.today - timedelta(days=3), self.today - timedelta(days=40)):
            checks = self.ledger.check_books(as_of)
            assert checks["ok"], checks

    @invariant()
    def every_settled_year_earned_what_its_movements_give(self) -> None:
        """COR-3 / MNY-4: after corrections and postings dated into settled years, the settlements plus every
        interest adjustment equal the settled years recomputed from today's movements (nothing owed)."""
        for account_no in self.models:
            account = self.ledger.account_whole(account_no)
            owed = self.ledger._interest_adjustment(account, "", {"value_date": date.min}, without=False)
            assert owed.is_zero, (account_no, owed, account.interest_years)

    @invariant()
    def every_account_replays_the_same_from_the_store(self) -> None:
        for account_no in self.models:
            account_id = FundAccount.create_id(account_no)
            loaded: FundAccount = self.ledger.repository.get(account_id)  # from its compact snapshot
            live: FundAccount = self.ledger.replay_whole(account_id)
            fresh: FundAccount = self.replay.replay_whole(account_id)
            assert decision_state(loaded) == decision_state(live) == decision_state(fresh), account_no
            assert (fresh.version, fresh.balance, fresh.state, fresh.movements, fresh.postings, fresh.freezes,
                    fresh.interest_years, fresh.withdrawals) == \
                   (live.version, live.balance, live.state, live.movements, live.postings, live.freezes,
                    live.interest_years, live.withdrawals)


class PostgresFundAccountMachine(FundAccountMachine):
    """The same machine on PostgreSQL: a scratch schema per example, dropped at its teardown."""

    scratch_url: Callable[[], str]

    def open_store(self) -> tuple[str, Callable[[], None]]:
        url = type(self).scratch_url()
        return url, lambda: drop_postgres_schema(parse_database_url(url))


@pytest.mark.slow
def test_random_account_histories_keep_the_books_on_sqlite() -> None:
    FundAccountMachine.TestCase.settings = SQLITE_SETTINGS
    FundAccountMachine.TestCase().runTest()


@pytest.mark.slow
@pytest.mark.storage
def test_random_account_histories_keep_the_books_on_postgresql(postgres_scratch_url: Callable[[], str]) -> None:
    PostgresFundAccountMachine.scratch_url = staticmethod(postgres_scratch_url)  # type: ignore[assignment]
    PostgresFundAccountMachine.TestCase.settings = POSTGRES_SETTINGS
    PostgresFundAccountMachine.TestCase().runTest()
