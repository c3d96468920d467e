"""Shared fixtures: one ledger per test on each event store, a fixed clock, fund set-up helpers.

``store_url`` runs a test on SQLite (a file under ``tmp_path``) and on PostgreSQL (a
scratch schema per test, dropped afterwards). PostgreSQL is never skipped: when it
cannot be reached its parameters *fail*, so CI cannot go green without it
(``GJJ_TEST_POSTGRES_URL`` points the tests at another server).

``fund`` / ``sqlite_fund`` wrap a ledger with the steps most tests repeat: open an
employer with its ratio (缴存比例), open members with a base (缴存基数), and credit
months by registering a remittance (汇缴书) and receiving its money — the numbers
the ledger must agree with come from the member's base and the ratio (CON-1).
"""

from __future__ import annotations

import copy
import os
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from typing import Any, Callable, Iterator

import psycopg
import pytest

from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock
from ledger.aggregates.fund_account import FundAccount
from ledger.money import Money
from ledger.policy import DEFAULT_POLICY, Policy, parse_policy
from ledger.sampledata import credit_code, resident_id
from ledger.services.accounts import share
from ledger.services.contributions import RemittanceLine
from ledger.storage import drop_postgres_schema, parse_database_url

# Every save in the tests also checks that the audit chain's in-memory canonical JSON equals the one
# decoded from the stored event (ledger.audit_append.check_records).
os.environ.setdefault("GJJ_AUDIT_SELFCHECK", "y")
POSTGRES_URL = os.environ.get("GJJ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
START = datetime(2024, 6, 1, 10, 0, tzinfo=CHINA_TZ)
CENTRE_ACCOUNT = "3100000001"  # the sample city's centre bank account (policy bank.centre_account)
STORE_PARAMS = [
    pytest.param("sqlite", id="sqlite", marks=pytest.mark.storage),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.storage),
]


# -- stores -----------------------------------------------------------------------
def postgres_reachable_or_fail() -> None:
    """CI must never skip PostgreSQL: an unreachable server fails the test."""
    conninfo = parse_database_url(POSTGRES_URL).psycopg_conninfo()
    try:
        with psycopg.connect(conninfo, connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS):
            pass
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} (the storage tests need it): {exc}",
                    pytrace=False)


def scratch_postgres_url() -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}schema=t_{uuid.uuid4().hex}"


def drop_scratch(url: str) -> None:
    config = parse_database_url(url)
    if config.engine == "postgresql":
        drop_postgres_schema(config)


@pytest.fixture(params=STORE_PARAMS)
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.sqlite3"
        return
    postgres_reachable_or_fail()
    url = scratch_postgres_url()
    try:
        yield url
    finally:
        drop_scratch(url)


@pytest.fixture
def postgres_scratch_url() -> Callable[[], str]:
    """For tests that open many stores (state machines): fails when PostgreSQL is down, never skips."""
    postgres_reachable_or_fail()
    return scratch_postgres_url


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/ledger.sqlite3"


# -- clock and ledgers ------------------------------------------------------------------
@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@dataclass
class LedgerFactory:
    """Opens ledgers on one store (a policy variant, or a fresh reader to replay) and closes them all."""

    url: str
    clock: FixedClock
    opened: list[Ledger] = field(default_factory=list)

    def __call__(self, policy: Policy | None = None) -> Ledger:
        ledger = Ledger(self.url, clock=self.clock, policy=policy)
        self.opened.append(ledger)
        return ledger

    def close(self) -> None:
        for ledger in reversed(self.opened):
            ledger.close()
        self.opened.clear()


@pytest.fixture
def open_ledger(store_url: str, clock: FixedClock) -> Iterator[LedgerFactory]:
    factory = LedgerFactory(store_url, clock)
    yield factory
    factory.close()


@pytest.fixture
def ledger(open_ledger: LedgerFactory) -> Ledger:
    return open_ledger()


@pytest.fixture
def open_sqlite_ledger(sqlite_url: str, clock: FixedClock) -> Iterator[LedgerFactory]:
    factory = LedgerFactory(sqlite_url, clock)
    yield factory
    factory.close()


@pytest.fixture
def sqlite_ledger(open_sqlite_ledger: LedgerFactory) -> Ledger:
    return open_sqlite_ledger()


# -- policy variants -----------------------------------------------------------------------
def sample_policy_data() -> dict[str, Any]:
    text = resources.files("ledger.policies").joinpath(DEFAULT_POLICY).read_text("utf-8")
    return tomllib.loads(text)


def policy_variant(**sections: dict[str, Any]) -> Policy:
    """The sample city with some ⚙ changed from its first version on: ``policy_variant(interest={...})``."""
    data = copy.deepcopy(sample_policy_data())
    first = data["versions"][0]
    for section, changes in sections.items():
        first[section] = {**first[section], **changes}
    return parse_policy(data, "<test variant>")


@pytest.fixture
def make_policy() -> Callable[..., Policy]:
    return policy_variant


# -- fund set-up helpers -------------------------------------------------------------------
@dataclass
class Fund:
    """A ledger with its clock and counters: employers, members and credited months in one line each."""

    ledger: Ledger
    clock: FixedClock
    sequence: int = 0

    def next(self) -> int:
        self.sequence += 1
        return self.sequence

    # time
    @property
    def today(self) -> date:
        return self.ledger.today()

    def on(self, day: date, hour: int = 10) -> None:
        """Move the clock to ``day`` (MNY-4: value dates follow the recording day)."""
        self.clock.set_day(day, hour)

    # parties
    def employer(self, ratio: str = "12", from_period: str | None = None, number: int | None = None) -> str:
        code = credit_code(number or self.next())
        self.ledger.open_employer(code, f"测试单位{code[-4:]}", "6222000011112222", self.today, ratio=ratio,
                                  from_period=from_period)
        return code

    def member(self, employer_code: str, base: str = "7777.00", from_period: str | None = None, *,
               birth_date: date = date(1990, 1, 1), male: bool = True) -> tuple[str, str]:
        """A member with an open fund account; returns (resident id, account number)."""
        number = resident_id(birth_date, self.next(), male)
        self.ledger.open_member(number, f"职工{self.sequence}", employer_code, self.today)
        opened = self.ledger.open_account(number, self.today, base=base, from_period=from_period)
        return number, opened["account_no"]

    def account(self, account_no: str) -> FundAccount:
        """The account with its whole history (tests read its movements and postings; ADR 0017), checked to
        decide like the compact one the ledger loads from its snapshot."""
        from ledger.aggregates.fund_compact import decision_state

        whole, loaded = self.ledger.account_whole(account_no), self.ledger.account(account_no)
        assert decision_state(whole) == decision_state(loaded), account_no
        return whole

    def balance(self, account_no: str) -> Money:
        return self.account(account_no).balance

    # contributions
    def lines(self, employer_code: str, period: str, accounts: list[str]) -> list[RemittanceLine]:
        """Lines that agree with each member's dated base and the employer's dated ratios (CON-1)."""
        employer = self.ledger.employer(employer_code)
        rounding = self.ledger.policy.at(date(int(period[:4]), int(period[5:]), 1)).contribution.share_rounding
        ratios = employer.ratios_for(period)
        assert ratios is not None, f"no ratios for {period}"
        lines = []
        for index, account_no in enumerate(accounts, start=1):
            base = self.account(account_no).base_for(period)
            assert base is not None, f"no base for {account_no} in {period}"
            lines.append(RemittanceLine(index, account_no, base, share(base, ratios[0], rounding),
                                        share(base, ratios[1], rounding)))
        return lines

    def register(self, employer_code: str, period: str, accounts: list[str], kind: str = "remittance",
                 document_number: str | None = None) -> dict[str, Any]:
        document_number = document_number or f"D{self.next():05d}"
        return self.ledger.register_remittance(employer_code, period, kind, document_number,
                                               self.lines(employer_code, period, accounts), self.today)

    def pay(self, amount: str | Money, serial: str = "", value_date: date | None = None,
            host_serial: str | None = None, bank: str = "ICBC") -> dict[str, Any]:
        day = value_date or self.today
        return self.ledger.receive(bank, f"{day:%Y%m%d}", host_serial or f"H{self.next():07d}", CENTRE_ACCOUNT,
                                   str(amount), day, serial)

    def remit(self, employer_code: str, period: str, accounts: list[str], value_date: date | None = None,
              kind: str = "remittance") -> dict[str, Any]:
        """Register a document for ``accounts`` and receive exactly its total (members credited)."""
        document = self.register(employer_code, period, accounts, kind)
        assert document["rejected"] == 0, document["problem_rows"]
        receipt = self.pay(document["total"], document["serial"], value_date)
        assert receipt["applied"] == document["total"], receipt
        return {"document": document, "receipt": receipt}

    # withdrawals
    def withdraw(self, account_no: str, amount: str | None, kind: str = "other",
                 evidence: dict[str, Any] | None = None, value_date: date | None = None,
                 key: str | None = None) -> dict[str, Any]:
        return self.ledger.withdraw(account_no, kind, amount, value_date or self.today,
                                    evidence if evidence is not None else {"purpose": "测试"},
                                    key or f"wd-{self.next()}")

    # books
    def fingerprint(self) -> tuple[Any, ...]:
        """Everything a refused command must leave as it was: the log head, the books, every account."""
        accounts = [self.ledger.repository.get(i) for i in self.ledger.account_ids()]
        return (self.ledger.recorder.max_notification_id(), self.ledger.trial_balance().rows(),
                [(a.account_no, a.state, str(a.balance), a.version, dict(a.freezes)) for a in accounts])

    def assert_books(self, *as_of: date) -> None:
        """GL-3 balanced and GL-2 control accounts equal to their sub-ledgers, now and as of each date."""
        for day in (None, *as_of):
            trial = self.ledger.trial_balance(day)
            assert trial.difference.is_zero, trial.as_dict()
            checks = self.ledger.check_books(day)
            assert checks["ok"], checks


@pytest.fixture
def fund(ledger: Ledger, clock: FixedClock) -> Fund:
    return Fund(ledger, clock)


@pytest.fixture
def sqlite_fund(sqlite_ledger: Ledger, clock: FixedClock) -> Fund:
    return Fund(sqlite_ledger, clock)


@pytest.fixture
def fund_for() -> Callable[[Ledger], Fund]:
    """A Fund helper around another ledger (e.g. one opened with a policy variant)."""
    return lambda ledger: Fund(ledger, ledger.clock)


