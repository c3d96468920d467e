"""Monthly offset (按月冲还贷) through the ledger: OFF-1..5, LN-4, LN-5, LN-7, LN-8, GL-1..3.

The worked loan of SPEC.md (500,000.00 over 360 months at 2.85 %, disbursed 2025-01-15, due on the
15th; instalment 2,067.79 = 1,187.50 interest + 880.29 principal) is deducted from the borrower's
and the spouse's fund accounts and the card. 2025-02-15 is a Saturday, so instalment 1 is deducted
on Monday 2025-02-17 (LN-4) and a payment that day is on time. Every figure below is worked by hand
in a comment or typed from SPEC.md, never read back from the code; after every scenario the books
balance and each control account equals its sub-ledger (GL-2, GL-3).

Speed: the households and loans are built once per module into a SQLite file; each test runs on
its own copy with the policy variant it needs (``Ledger(url, policy=..., clock=...)``). The worked
case and the exactly-once re-run also run on PostgreSQL, built from scratch.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.aggregates.base import recording
from ledger.aggregates.fund_account import CLOSED, SEALED
from ledger.aggregates.loan import CLOSED as LOAN_CLOSED
from ledger.aggregates.offset import DEDUCTED, SKIPPED, Deduction, MandateError, OffsetRunLog
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock, topic_of
from ledger.money import ZERO, Money
from ledger.sampledata import card_number

CENTRE_ACCOUNT = "3100000001"
BASE = "30000.00"  # 30,000.00 x 12 % x 2 = 7,200.00 a month; 2024-06..2024-12 credited = 50,400.00
CREDITED = Money("50400.00")
INSTALMENT = Money("2067.79")
FIRST_DEDUCTION = date(2025, 2, 17)  # instalment 1 is due Saturday 2025-02-15 (LN-4)
SECOND_DEDUCTION = date(2025, 3, 17)  # instalment 2 is due Saturday 2025-03-15
OTHER = {"purpose": "测试"}


# -- the households, built once -----------------------------------------------------------------------
@dataclass(frozen=True)
class Household:
    borrower: str  # resident id
    spouse: str
    borrower_account: str
    spouse_account: str
    loan_no: str
    disbursed_on: date


@dataclass
class World:
    """One store (a copy of the module's template or a fresh PostgreSQL schema) and its households."""

    url: str
    clock: FixedClock
    households: list[Household]
    opened: list[Ledger]

    @property
    def worked(self) -> Household:
        return self.households[0]

    def ledger(self, policy: Any = None) -> Ledger:
        ledger = Ledger(self.url, clock=self.clock, policy=policy)
        self.opened.append(ledger)
        return ledger

    def on(self, day: date) -> None:
        self.clock.set_day(day, 10)


# Disbursement days: the worked loan (due on the 15th, deducted Monday 02-17), then three loans due
# Tuesday 02-18, Wednesday 02-19 and Thursday 02-20 for the catch-up run.
DISBURSEMENT_DAYS = (date(2025, 1, 15), date(2025, 1, 18), date(2025, 1, 19), date(2025, 1, 20))


def build_households(ledger: Ledger, clock: FixedClock, employer_number: int = 1) -> list[Household]:
    """Four couples credited 2024-06..2024-12 at base 30,000.00; each borrower has a card and a
    500,000.00 / 360 months loan (2.85 %) disbursed on one of ``DISBURSEMENT_DAYS``; no mandates yet."""
    from tests.conftest import Fund  # the shared set-up helper: employer, members, remittances

    fund = Fund(ledger, clock, sequence=employer_number * 100)
    employer = fund.employer(ratio="12", from_period="2024-06")
    couples = []
    for _ in DISBURSEMENT_DAYS:
        borrower, borrower_account = fund.member(employer, base=BASE, from_period="2024-06")
        spouse, spouse_account = fund.member(employer, base=BASE, from_period="2024-06",
                                             birth_date=date(1991, 3, 3), male=False)
        ledger.link_spouses(borrower, spouse, fund.today)
        ledger.set_card(borrower, "ICBC", card_number(fund.next()))
        couples.append((borrower, spouse, borrower_account, spouse_account))
    for month in range(6, 13):
        fund.on(date(2024, month, 5))
        fund.remit(employer, f"2024-{month:02d}", [a for c in couples for a in c[2:]])
    households = []
    for (borrower, spouse, borrower_account, spouse_account), disbursed_on in zip(couples, DISBURSEMENT_DAYS):
        fund.on(date(2025, 1, 10))
        loan_no = ledger.apply_for_loan(borrower, "500000.00", 360, "equal-instalment", "800000.00", "20000.00",
                                        date(2025, 1, 10), "ICBC")["loan_no"]
        ledger.approve_loan(loan_no, date(2025, 1, 10))
        fund.on(disbursed_on)
        ledger.disburse_loan(loan_no, disbursed_on)
        households.append(Household(borrower, spouse, borrower_account, spouse_account, loan_no, disbursed_on))
    fund.on(date(2025, 1, 20))
    return households


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Household]]:
    folder = tmp_path_factory.mktemp("offset-template")
    clock = FixedClock(datetime(2024, 6, 1, 10, tzinfo=CHINA_TZ))
    ledger = Ledger(f"sqlite:///{folder}/ledger.sqlite3", clock=clock)
    households = build_households(ledger, clock)
    ledger.close()
    return folder, households


@pytest.fixture
def world(template: tuple[Path, list[Household]], tmp_path: Path) -> Iterator[World]:
    """A private copy of the template store (SQLite), clock on 2025-01-20."""
    folder, households = template
    for path in folder.iterdir():
        shutil.copy(path, tmp_path / path.name)
    clock = FixedClock(datetime(2025, 1, 20, 10, tzinfo=CHINA_TZ))
    made = World(f"sqlite:///{tmp_path}/ledger.sqlite3", clock, households, [])
    yield made
    for ledger in reversed(made.opened):
        ledger.close()


@pytest.fixture
def any_world(store_url: str) -> Iterator[World]:
    """Built from scratch on each engine (SQLite and PostgreSQL)."""
    clock = FixedClock(datetime(2024, 6, 1, 10, tzinfo=CHINA_TZ))
    ledger = Ledger(store_url, clock=clock)
    made = World(store_url, clock, build_households(ledger, clock), [ledger])
    yield made
    for ledger in reversed(made.opened):
        ledger.close()


# -- helpers ------------------------------------------------------------------------------------------
def set_balances(world: World, ledger: Ledger, household: Household, borrower: str | None,
                 spouse: str | None, on: date = date(2025, 1, 20)) -> None:
    """Withdraw (kind 99 other) down to the balances wanted; ``None`` leaves an account at 50,400.00."""
    world.on(on)
    for account_no, wanted in ((household.borrower_account, borrower), (household.spouse_account, spouse)):
        if wanted is None:
            continue
        take = ledger.account(account_no).balance - Money(wanted)
        if take > ZERO:
            ledger.withdraw(account_no, "other", str(take), on, OTHER, f"set-{account_no}-{on}-{wanted}")
        assert ledger.account(account_no).balance == Money(wanted)


def sign_mandate(ledger: Ledger, household: Household, borrower_on: date = date(2025, 1, 20),
                 spouse_on: date = date(2025, 1, 20)) -> dict[str, Any]:
    ledger.create_mandate(household.loan_no, min(borrower_on, spouse_on))
    ledger.sign_mandate(household.loan_no, household.borrower, borrower_on)
    return ledger.sign_mandate(household.loan_no, household.spouse, spouse_on)


def run(world: World, ledger: Ledger, day: date) -> dict[str, Any]:
    world.on(day)
    return ledger.run_offset(day)


def deduction(ledger: Ledger, household: Household, day: date) -> Deduction:
    return ledger.repository.get(Deduction.create_id(household.loan_no, day))


def deductions_recorded(ledger: Ledger, loan_no: str | None = None) -> list[Any]:
    """Deductions counted from the event log (the Recorded events), not from the aggregates."""
    events = ledger.iter_events(topics=[topic_of(Deduction, "Recorded")])
    return [e for e in events if loan_no is None or e.loan_no == loan_no]


def split(found: Deduction) -> list[tuple[str, str, str, str, str]]:
    """(role, amount, penalty, interest, principal) of each fund payer, as text."""
    return [(p["role"], str(p["amount"]), str(p["penalty"]), str(p["interest"]), str(p["principal"]))
            for p in found.parts]


def live_debit(ledger: Ledger, household: Household) -> Any:
    mandate = ledger.mandate(household.loan_no)
    return ledger.repository.get(mandate.last_debit_id) if mandate.last_debit_id else None


def submit(ledger: Ledger, household: Household, day: date, batch: str) -> Any:
    debit = live_debit(ledger, household)
    assert debit.state == "CREATED", debit.state
    ledger.submit_debits([debit], day, batch)
    return ledger.repository.get(debit.id)


def books_ok(ledger: Ledger, *as_of: date) -> None:
    for day in (None, *as_of):
        checks = ledger.check_books(day)
        assert checks["ok"], checks


def penalty(*spans: tuple[str, int]) -> Money:
    """LN-7 by hand: round(Σ overdue at the end of each day before x days x 2.85 % x 1.5 / 360).

    The funds' 1,700.00 arrives on the deduction day (02-17); if the instalment is still not paid in
    full that day it is overdue from its due date (02-15), so 02-16 and 02-17 count the whole 2,067.79.
    """
    from decimal import Decimal

    product = sum((Money(amount).amount * days for amount, days in spans), Decimal(0))
    return Money.of(product * Decimal("0.0285") * Decimal("1.5") / 360)


# -- OFF-2: the worked case under each shortfall rule ---------------------------------------------
def test_waterfall_worked_case_on_each_engine(any_world: World) -> None:
    """OFF-2 waterfall: 1,200.00 / 500.00 / card 367.79; LN-5: 1,187.50 interest + 12.50 principal from
    the borrower, 500.00 principal from the spouse, 367.79 principal from the card (OFF-5 split)."""
    world, home = any_world, any_world.worked
    ledger = world.opened[0]
    set_balances(world, ledger, home, "1200.00", "500.00")
    assert sign_mandate(ledger, home)["effective_from"] == "2025-02-01"
    report = run(world, ledger, FIRST_DEDUCTION)["dates"]
    assert report == [{"deduction_on": "2025-02-17", "loans": 1, "deducted": 1, "already_done": 0,
                       "from_borrower_funds": "1200.00", "from_spouse_funds": "500.00", "to_cards": "367.79",
                       "debits_created": 1, "debits_cancelled": 0, "skipped": {}}]
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert (found.outcome, found.amount_due, found.card_amount, found.rule) == (
        DEDUCTED, INSTALMENT, Money("367.79"), "waterfall")
    assert split(found) == [("borrower", "1200.00", "0.00", "1187.50", "12.50"),
                            ("spouse", "500.00", "0.00", "0.00", "500.00")]
    assert found.policy_used == {"shortfall_rule": "waterfall", "cover_test": ">=", "sealed_pays": True,
                                 "frozen_pays": False, "retained_balance_min": "0.00"}
    assert ledger.account(home.borrower_account).balance == ZERO
    assert ledger.account(home.spouse_account).balance == ZERO

    # OFF-5: on the account statement a withdrawal, reason 06, 冲还贷, with the loan number
    line = ledger.history(home.borrower_account)["lines"][-1]
    assert (line["value_date"], line["kind"], line["amount"], line["balance"]) == (
        "2025-02-17", "offset", "-1200.00", "0.00")
    assert line["detail"] == {"loan_no": home.loan_no, "code": "06"}
    assert ledger.history(home.spouse_account)["lines"][-1]["amount"] == "-500.00"

    # OFF-3: the card part is one debit instruction for instalment 1
    debit = live_debit(ledger, home)
    assert (debit.state, debit.amount, debit.instalments, debit.deduction_on) == (
        "CREATED", Money("367.79"), [1], FIRST_DEDUCTION)
    assert found.debit_id == debit.id
    submit(ledger, home, FIRST_DEDUCTION, "B0001")
    world.on(date(2025, 2, 18))
    collected = ledger.collect_debit(debit.serial, FIRST_DEDUCTION, "H0000001", Money("367.79"))
    assert (collected["state"], collected["applied"], collected["suspense"]) == ("COLLECTED", "367.79", "0.00")

    # GL-1 offset per payer Dr 2001 / Cr 1102, 1101; the card Dr 1001 / Cr 1101
    loan = ledger.loan(home.loan_no)
    payments = [(p["source"], str(p["amount"]), str(p["figures"]["interest"]), str(p["figures"]["principal"]),
                 sorted((l["account"], l["side"], str(l["amount"])) for l in p["journal"])) for p in loan.payments]
    assert payments == [
        ("borrower-fund", "1200.00", "1187.50", "12.50",
         [("1101", "Cr", "12.50"), ("1102", "Cr", "1187.50"), ("2001", "Dr", "1200.00")]),
        ("spouse-fund", "500.00", "0.00", "500.00", [("1101", "Cr", "500.00"), ("2001", "Dr", "500.00")]),
        ("card", "367.79", "0.00", "367.79", [(f"1001.{CENTRE_ACCOUNT}", "Dr", "367.79"), ("1101", "Cr", "367.79")]),
    ]
    status = ledger.loan_status(home.loan_no, FIRST_DEDUCTION)
    assert (status["amount_due"], status["instalments_paid"], status["outstanding_principal"]) == (
        "0.00", 1, "499119.71")  # 500,000.00 - 880.29
    books_ok(ledger, FIRST_DEDUCTION, date(2025, 2, 16))

    # OFF-4: a re-run finds the day done; a forced re-run of the date deducts nothing twice
    assert ledger.run_offset(FIRST_DEDUCTION)["dates"] == []
    again = ledger.run_offset_date(FIRST_DEDUCTION)
    assert (again.loans, again.already, again.deducted) == (1, 1, 0)
    assert len(deductions_recorded(ledger, home.loan_no)) == 1
    assert ledger.account(home.borrower_account).balance == ZERO
    books_ok(ledger)


def test_the_derived_id_refuses_a_second_deduction_for_the_same_loan_and_date(world: World) -> None:
    """OFF-4 safety net: even a writer that skips the 'already deducted?' check cannot save a second one."""
    ledger, home = world.ledger(), world.worked
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    with recording(world.clock.now()):
        twin = Deduction(loan_no=home.loan_no, deduction_on=FIRST_DEDUCTION, outcome=SKIPPED, reason="NOTHING_DUE",
                         amount_due=ZERO, parts=[], card_amount=ZERO, debit_id=None, rule="waterfall",
                         policy_used={})
    with pytest.raises(IntegrityError):
        ledger.save(twin)
    assert len(deductions_recorded(ledger, home.loan_no)) == 1
    books_ok(ledger)


# (policy changes, borrower balance, spouse balance, borrower part, spouse part, card) — OFF-2 by hand
SHORTFALL_CASES = {
    # waterfall with retained_balance_min 0.01 (Bijie): each account keeps 0.01
    "waterfall-minimum-0.01": ({"account": {"retained_balance_min": "0.01"}}, "1200.00", "500.00",
                               "1199.99", "499.99", "367.81"),
    # household-all-or-nothing: 1,700.00 < 2,067.79, so the card pays it all
    "household-short": ({"offset": {"shortfall_rule": "household-all-or-nothing"}}, "1200.00", "500.00",
                        None, None, "2067.79"),
    # ... 1,200.00 + 867.79 = 2,067.79 exactly: >= covers (default) ...
    "household-equal->=": ({"offset": {"shortfall_rule": "household-all-or-nothing"}}, "1200.00", "867.79",
                           "1200.00", "867.79", "0.00"),
    # ... > does not (Bijie)
    "household-equal->": ({"offset": {"shortfall_rule": "household-all-or-nothing", "cover_test": ">"}},
                          "1200.00", "867.79", None, None, "2067.79"),
    # ... > with 0.01 more: covered, the spouse pays only what is left
    "household-over->": ({"offset": {"shortfall_rule": "household-all-or-nothing", "cover_test": ">"}},
                         "1200.00", "867.80", "1200.00", "867.79", "0.00"),
    # each-account-whole: neither account covers 2,067.79 alone
    "each-whole-short": ({"offset": {"shortfall_rule": "each-account-whole"}}, "1200.00", "500.00",
                         None, None, "2067.79"),
    # ... the borrower cannot, the spouse can exactly (>=): the spouse pays it all
    "each-whole-spouse->=": ({"offset": {"shortfall_rule": "each-account-whole"}}, "1200.00", "2067.79",
                             None, "2067.79", "0.00"),
    # ... with > equality is not enough
    "each-whole-spouse->": ({"offset": {"shortfall_rule": "each-account-whole", "cover_test": ">"}},
                            "1200.00", "2067.79", None, None, "2067.79"),
    # ... the borrower covers: the borrower first, the spouse untouched
    "each-whole-borrower": ({"offset": {"shortfall_rule": "each-account-whole"}}, "3000.00", "3000.00",
                            "2067.79", None, "0.00"),
    # waterfall ignores the cover test: equality is taken whole under > as well
    "waterfall-equal->": ({"offset": {"cover_test": ">"}}, "2067.79", "500.00", "2067.79", None, "0.00"),
}

# LN-5 by hand: interest 1,187.50 first, then principal 880.29, payer after payer.
LN5 = {
    ("borrower", "1199.99"): ("1187.50", "12.49"), ("spouse", "499.99"): ("0.00", "499.99"),
    ("borrower", "1200.00"): ("1187.50", "12.50"), ("spouse", "867.79"): ("0.00", "867.79"),
    ("spouse", "2067.79"): ("1187.50", "880.29"), ("borrower", "2067.79"): ("1187.50", "880.29"),
}


@pytest.mark.parametrize("case", list(SHORTFALL_CASES))
def test_shortfall_rules_cover_tests_and_minimum(world: World, make_policy: Callable[..., Any], case: str) -> None:
    changes, borrower, spouse, borrower_part, spouse_part, card = SHORTFALL_CASES[case]
    ledger, home = world.ledger(make_policy(**changes)), world.worked
    set_balances(world, ledger, home, borrower, spouse)
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    found = deduction(ledger, home, FIRST_DEDUCTION)
    expected = []
    for role, part in (("borrower", borrower_part), ("spouse", spouse_part)):
        if part is not None:
            interest, principal = LN5[(role, part)]
            expected.append((role, part, "0.00", interest, principal))
    assert (found.outcome, split(found), str(found.card_amount)) == (DEDUCTED, expected, card)
    assert found.policy_used["shortfall_rule"] == changes.get("offset", {}).get("shortfall_rule", "waterfall")
    fund_total = Money.sum(Money(p[1]) for p in expected)
    assert fund_total + Money(card) == INSTALMENT
    after = (ledger.account(home.borrower_account).balance, ledger.account(home.spouse_account).balance)
    assert after == (Money(borrower) - Money(borrower_part or "0"), Money(spouse) - Money(spouse_part or "0"))
    debit = live_debit(ledger, home)
    assert (debit.amount if debit else ZERO) == Money(card)
    if debit is not None:  # the card's money continues where the funds stopped (LN-5)
        submit(ledger, home, FIRST_DEDUCTION, "B0001")
        ledger.collect_debit(debit.serial, FIRST_DEDUCTION, "H1", Money(card))
        card_payment = ledger.loan_whole(home.loan_no).payments[-1]["figures"]
        taken_interest = Money.sum(Money(p[3]) for p in expected)
        assert card_payment["interest"] == Money("1187.50") - taken_interest
        assert card_payment["interest"] + card_payment["principal"] == Money(card)
    assert ledger.loan_status(home.loan_no, FIRST_DEDUCTION)["amount_due"] == "0.00"
    books_ok(ledger, FIRST_DEDUCTION)


# -- OFF-2: payer states -------------------------------------------------------------------------------
def test_a_frozen_borrower_pays_nothing_by_default(world: World) -> None:
    """frozen_pays no: available 0.00; the spouse's 500.00 pays interest first, the card the rest."""
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "1200.00", "500.00")
    ledger.freeze(home.borrower_account, "centre", "冻-001", date(2025, 1, 20), amount="100.00")
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert split(found) == [("spouse", "500.00", "0.00", "500.00", "0.00")]
    assert found.card_amount == Money("1567.79")  # 2,067.79 - 500.00
    assert ledger.account(home.borrower_account).balance == Money("1200.00")
    books_ok(ledger)


def test_a_frozen_borrower_pays_what_is_not_frozen_when_policy_says_so(world: World,
                                                                      make_policy: Callable[..., Any]) -> None:
    """frozen_pays yes (Bijie): available = 1,200.00 - 1,000.00 frozen - 0.01 minimum = 199.99."""
    policy = make_policy(offset={"frozen_pays": True}, account={"retained_balance_min": "0.01"})
    ledger, home = world.ledger(policy), world.worked
    set_balances(world, ledger, home, "1200.00", "500.00")
    ledger.freeze(home.borrower_account, "court", "(2025)京0105执1号", date(2025, 1, 20), amount="1000.00")
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert split(found) == [("borrower", "199.99", "0.00", "199.99", "0.00"),
                            ("spouse", "499.99", "0.00", "499.99", "0.00")]
    assert found.card_amount == Money("1367.81")  # 2,067.79 - 199.99 - 499.99
    borrower = ledger.account(home.borrower_account)
    assert (borrower.balance, borrower.frozen_sum) == (Money("1000.01"), Money("1000.00"))
    books_ok(ledger)


@pytest.mark.parametrize("sealed_pays, borrower_part, card", [(True, "1200.00", "367.79"), (False, None, "1567.79")])
def test_a_sealed_borrower_pays_unless_policy_says_no(world: World, make_policy: Callable[..., Any],
                                                     sealed_pays: bool, borrower_part: str | None,
                                                     card: str) -> None:
    ledger, home = world.ledger(make_policy(offset={"sealed_pays": sealed_pays})), world.worked
    set_balances(world, ledger, home, "1200.00", "500.00")
    ledger.seal(home.borrower_account, date(2025, 1, 20), "left employer")
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert ledger.account(home.borrower_account).state == SEALED
    roles = [(p[0], p[1]) for p in split(found)]
    assert roles == ([("borrower", borrower_part)] if borrower_part else []) + [("spouse", "500.00")]
    assert found.card_amount == Money(card)
    books_ok(ledger)


def test_empty_payer_accounts_pay_nothing_and_the_card_pays_it_all(world: World) -> None:
    """A zero balance → 0.00 available: the card pays the whole instalment."""
    ledger, home = world.ledger(), world.worked
    sign_mandate(ledger, home)
    set_balances(world, ledger, home, "0.00", "0.00", on=date(2025, 2, 3))
    run(world, ledger, FIRST_DEDUCTION)
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert (found.outcome, found.parts, found.card_amount) == (DEDUCTED, [], INSTALMENT)
    assert live_debit(ledger, home).amount == INSTALMENT
    books_ok(ledger)


def test_a_payer_account_closing_ends_the_mandate_at_once(world: World) -> None:
    """OFF-1: a payer account closes (transfer out) → MandateEnded; the loan is skipped from then on."""
    ledger, home = world.ledger(), world.worked
    sign_mandate(ledger, home)
    set_balances(world, ledger, home, "0.00", "0.00", on=date(2025, 2, 3))
    ledger.close_account(home.spouse_account, "transfer-out", date(2025, 2, 3))
    assert ledger.account(home.spouse_account).state == CLOSED
    mandate = ledger.mandate(home.loan_no)
    assert (mandate.ended_on, mandate.end_reason) == (date(2025, 2, 3), "PAYER_CLOSED:transfer-out")
    assert ledger.account(home.borrower_account).agreement is None
    run(world, ledger, FIRST_DEDUCTION)
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert (found.outcome, found.reason) == (SKIPPED, "MANDATE_ENDED")
    books_ok(ledger)


# -- OFF-1: when a mandate counts ----------------------------------------------------------------------
def test_a_mandate_signed_mid_month_counts_from_the_1st_of_next_month(world: World) -> None:
    """Signed 02-10/02-12 → effective 03-01: 02-17 is SKIPPED(MANDATE_NOT_EFFECTIVE); on 03-17 the run
    takes the overdue instalment 1 with its penalty (LN-7) and instalment 2."""
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "1200.00", "500.00")
    world.on(date(2025, 2, 12))
    assert sign_mandate(ledger, home, date(2025, 2, 10), date(2025, 2, 12))["effective_from"] == "2025-03-01"
    run(world, ledger, FIRST_DEDUCTION)
    skipped = deduction(ledger, home, FIRST_DEDUCTION)
    assert (skipped.outcome, skipped.reason, skipped.parts) == (SKIPPED, "MANDATE_NOT_EFFECTIVE", [])
    assert ledger.account(home.borrower_account).balance == Money("1200.00")

    report = run(world, ledger, SECOND_DEDUCTION)["dates"]
    assert [r["deduction_on"] for r in report] == [f"2025-02-{d}" for d in range(18, 29)] + [
        f"2025-03-{d:02d}" for d in range(1, 18)]  # the catch-up covers every date, oldest first
    # instalment 1 overdue from 02-15: 30 days (02-16..03-17) x 2,067.79 → penalty 7.37
    assert penalty(("2067.79", 30)) == Money("7.37")
    found = deduction(ledger, home, SECOND_DEDUCTION)
    assert found.amount_due == Money("7.37") + INSTALMENT + INSTALMENT  # 4,142.95
    assert [(p["role"], str(p["amount"]), str(p["penalty"])) for p in found.parts] == [
        ("borrower", "1200.00", "7.37"), ("spouse", "500.00", "0.00")]
    assert found.card_amount == Money("2442.95")
    debit = live_debit(ledger, home)
    assert (debit.amount, debit.instalments) == (Money("2442.95"), [1, 2])
    submit(ledger, home, SECOND_DEDUCTION, "B0002")
    ledger.collect_debit(debit.serial, SECOND_DEDUCTION, "H2", Money("2442.95"))
    assert ledger.loan_status(home.loan_no, SECOND_DEDUCTION)["amount_due"] == "0.00"
    loan = ledger.loan_whole(home.loan_no)
    assert Money.sum(p["figures"]["interest"] for p in loan.payments) == Money("2372.91")  # 1,187.50 + 1,185.41
    assert Money.sum(p["figures"]["principal"] for p in loan.payments) == Money("1762.67")  # 880.29 + 882.38
    books_ok(ledger, FIRST_DEDUCTION, SECOND_DEDUCTION)


def _overdue_deduction(world: World, home: Household, first: date, second: date) -> tuple[Ledger, Deduction]:
    ledger = world.ledger()
    set_balances(world, ledger, home, "1200.00", "500.00")
    world.on(date(2025, 2, 12))
    sign_mandate(ledger, home, date(2025, 2, 10), date(2025, 2, 12))
    run(world, ledger, first)
    assert deduction(ledger, home, first).reason == "MANDATE_NOT_EFFECTIVE"
    run(world, ledger, second)
    return ledger, deduction(ledger, home, second)


def test_ln5_split_of_an_overdue_deduction(world: World) -> None:
    """A loan due on the 18th (Tuesday in February and March 2025): on 03-18 the borrower's 1,200.00
    pays penalty, then instalment 1's interest, then its principal; the spouse continues; the card
    pays the rest of instalment 1's principal, then instalment 2 (interest, principal) — LN-5."""
    home = world.households[1]
    ledger, found = _overdue_deduction(world, home, date(2025, 2, 18), date(2025, 3, 18))
    # 28 days (02-19..03-18) x 2,067.79 → 6.88
    assert penalty(("2067.79", 28)) == Money("6.88")
    assert found.amount_due == Money("4142.46")  # 6.88 + 2 x 2,067.79
    assert split(found) == [("borrower", "1200.00", "6.88", "1187.50", "5.62"),  # 1,200 - 6.88 - 1,187.50
                            ("spouse", "500.00", "0.00", "0.00", "500.00")]
    assert found.card_amount == Money("2442.46")  # 374.67 of instalment 1 + 1,185.41 + 882.38 of 2
    debit = live_debit(ledger, home)
    submit(ledger, home, date(2025, 3, 18), "B0002")
    ledger.collect_debit(debit.serial, date(2025, 3, 18), "H2", Money("2442.46"))
    card = ledger.loan_whole(home.loan_no).payments[-1]["figures"]
    assert (card["penalty"], card["interest"], card["principal"]) == (ZERO, Money("1185.41"), Money("1257.05"))
    assert [(p[0], str(p[1]), str(p[2])) for p in card["parts"]] == [(1, "0.00", "374.67"), (2, "1185.41", "882.38")]
    books_ok(ledger, date(2025, 3, 18))


def test_ln5_split_when_the_due_date_moved_to_the_next_working_day(world: World) -> None:
    """As above for the worked loan: instalment 2 is due Saturday 03-15 and deducted Monday 03-17."""
    home = world.worked
    ledger, found = _overdue_deduction(world, home, FIRST_DEDUCTION, SECOND_DEDUCTION)
    assert split(found) == [("borrower", "1200.00", "7.37", "1187.50", "5.13"),  # 1,200 - 7.37 - 1,187.50
                            ("spouse", "500.00", "0.00", "0.00", "500.00")]


def test_a_cancelled_mandate_stops_from_the_1st_of_next_month(world: World) -> None:
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "5000.00", "5000.00")
    sign_mandate(ledger, home)
    world.on(date(2025, 2, 10))
    with pytest.raises(MandateError) as stranger:  # only a signer cancels
        ledger.cancel_mandate(home.loan_no, world.households[1].borrower, date(2025, 2, 10))
    assert stranger.value.rule == "OFF-1"
    assert ledger.cancel_mandate(home.loan_no, home.spouse, date(2025, 2, 10))["cancelled_from"] == "2025-03-01"
    with pytest.raises(MandateError):
        ledger.cancel_mandate(home.loan_no, home.borrower, date(2025, 2, 11))
    run(world, ledger, FIRST_DEDUCTION)  # February is still covered
    assert deduction(ledger, home, FIRST_DEDUCTION).outcome == DEDUCTED
    assert ledger.account(home.borrower_account).balance == Money("2932.21")  # 5,000.00 - 2,067.79
    run(world, ledger, SECOND_DEDUCTION)
    found = deduction(ledger, home, SECOND_DEDUCTION)
    assert (found.outcome, found.reason) == (SKIPPED, "MANDATE_ENDED")
    assert ledger.account(home.borrower_account).balance == Money("2932.21")
    books_ok(ledger)


def test_a_cancelled_mandate_is_replaced_by_a_new_one_once_it_stops(world: World) -> None:
    """OFF-1: cancelled on 02-10 (stops 03-01): a new mandate is refused while the old one deducts, then
    signed on 03-02 it is effective from 04-01; 03-17 is skipped and 04-17 deducts, once per date."""
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "9000.00", "5000.00")
    sign_mandate(ledger, home)
    first = ledger.mandate(home.loan_no)
    world.on(date(2025, 2, 10))
    ledger.cancel_mandate(home.loan_no, home.borrower, date(2025, 2, 10))
    run(world, ledger, FIRST_DEDUCTION)
    world.on(date(2025, 2, 20))
    with pytest.raises(MandateError) as refused:
        ledger.create_mandate(home.loan_no, date(2025, 2, 20))
    assert (refused.value.field, refused.value.rule) == ("loan", "OFF-1") and "2025-03-01" in str(refused.value)
    world.on(date(2025, 3, 2))
    sign_mandate(ledger, home, date(2025, 3, 2), date(2025, 3, 2))
    second = ledger.mandate(home.loan_no)
    assert second.id != first.id and second.number == 2 and second.effective_from == date(2025, 4, 1)
    run(world, ledger, SECOND_DEDUCTION)
    assert deduction(ledger, home, FIRST_DEDUCTION).outcome == DEDUCTED      # the first mandate's February
    assert deduction(ledger, home, SECOND_DEDUCTION).reason == "MANDATE_NOT_EFFECTIVE"
    third = date(2025, 4, 15)                                                   # instalment 3, a Tuesday
    run(world, ledger, third)
    found = deduction(ledger, home, third)                                     # instalment 2 overdue, 3 due
    assert found.outcome == DEDUCTED and found.amount_due > INSTALMENT + INSTALMENT
    assert ledger.account(home.borrower_account).balance == Money("9000.00") - INSTALMENT - found.amount_due
    assert len([d for d in deductions_recorded(ledger, home.loan_no) if d.deduction_on == third]) == 1
    books_ok(ledger)


def test_a_loan_paid_off_early_ends_its_mandate(world: World) -> None:
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "5000.00", "500.00")
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    world.on(date(2025, 3, 3))
    paid = ledger.pay_off_loan(home.loan_no, date(2025, 3, 3), "PO-1")
    assert paid["state"] == LOAN_CLOSED
    mandate = ledger.mandate(home.loan_no)
    assert (mandate.ended_on, mandate.end_reason, mandate.is_live) == (date(2025, 3, 3), "LOAN_CLOSED", False)
    assert ledger.account(home.borrower_account).agreement is None  # free for another agreement (WD-4)
    assert ledger.account(home.spouse_account).agreement is None
    run(world, ledger, SECOND_DEDUCTION)
    found = deduction(ledger, home, SECOND_DEDUCTION)
    assert (found.outcome, found.reason) == (SKIPPED, "LOAN_CLOSED")
    assert ledger.account(home.borrower_account).balance == Money("2932.21")
    books_ok(ledger, SECOND_DEDUCTION)
    report = run(world, ledger, date(2025, 5, 19))  # catches up 04-15 and 05-15 (deduction days)
    for later in (date(2025, 4, 15), date(2025, 5, 15)):  # > 31 days after the mandate ended: no outcome
        assert ledger.find(Deduction.create_id(home.loan_no, later)) is None
    assert all(day["skipped"].get("LOAN_CLOSED", 0) == 0 for day in report["dates"] if day["deduction_on"] >=
               "2025-04-04")


def test_a_payer_account_is_in_one_live_mandate_at_most(world: World) -> None:
    ledger, home = world.ledger(), world.worked
    sign_mandate(ledger, home)
    with pytest.raises(MandateError):
        ledger.create_mandate(home.loan_no, date(2025, 1, 20))
    assert ledger.account(home.borrower_account).agreement == f"offset:{home.loan_no}"


# -- OFF-3: the card debit ------------------------------------------------------------------------------
def test_a_submitted_debit_makes_the_next_deduction_skip(world: World) -> None:
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "1200.00", "500.00")
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    submit(ledger, home, FIRST_DEDUCTION, "B0001")
    world.on(date(2025, 3, 5))
    run(world, ledger, SECOND_DEDUCTION)
    found = deduction(ledger, home, SECOND_DEDUCTION)
    assert (found.outcome, found.reason) == (SKIPPED, "DEBIT_PENDING")
    assert live_debit(ledger, home).state == "SUBMITTED"
    # OFF-3: the collection counts on the bank's host date, not the day the result arrives
    world.on(date(2025, 3, 20))
    debit = live_debit(ledger, home)
    ledger.collect_debit(debit.serial, FIRST_DEDUCTION, "H0000009", Money("367.79"))
    status = ledger.loan_status(home.loan_no, FIRST_DEDUCTION)
    assert (status["amount_due"], status["penalty_unpaid"], status["instalments_paid"]) == ("0.00", "0.00", 1)
    assert ledger.loan_whole(home.loan_no).payments[-1]["on"] == FIRST_DEDUCTION
    books_ok(ledger, FIRST_DEDUCTION, SECOND_DEDUCTION)


def test_a_created_debit_is_cancelled_into_the_new_amount(world: World) -> None:
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "1200.00", "500.00")
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    first = live_debit(ledger, home)
    report = run(world, ledger, SECOND_DEDUCTION)["dates"][-1]
    assert (report["debits_cancelled"], report["debits_created"]) == (1, 1)
    assert ledger.repository.get(first.id).state == "CANCELLED"
    # instalment 1: 2,067.79 unpaid at the end of 02-15 and 02-16, then 367.79 for 28 days (02-18..03-17)
    assert penalty(("2067.79", 2), ("367.79", 28)) == Money("1.71")
    second = live_debit(ledger, home)
    assert second.id != first.id and second.serial != first.serial
    assert (second.state, second.amount, second.instalments) == ("CREATED", Money("2437.29"), [1, 2])
    assert deduction(ledger, home, SECOND_DEDUCTION).card_amount == Money("2437.29")
    assert len(ledger.debits(("CREATED",))) == 1  # at most one live debit per loan
    books_ok(ledger)


def _first_debit(world: World, ledger: Ledger, home: Household) -> Any:
    set_balances(world, ledger, home, "1200.00", "500.00")
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    return submit(ledger, home, FIRST_DEDUCTION, "B0001")


def test_insufficient_funds_retries_three_times_then_exhausts(world: World) -> None:
    """余额不足: borrower, retryable: one retry each following working day, 3 retries, then EXHAUSTED."""
    ledger, home = world.ledger(), world.worked
    debit = _first_debit(world, ledger, home)
    failures = [FIRST_DEDUCTION, date(2025, 2, 18), date(2025, 2, 19), date(2025, 2, 20)]
    serials = []
    for attempt, day in enumerate(failures):
        world.on(day)
        if attempt:
            assert ledger.retry_debits(day) == {"on": day.isoformat(), "retried": 1, "cancelled": 0}
            debit = submit(ledger, home, day, f"B{attempt + 1:04d}")
        serials.append(debit.serial)
        result = ledger.fail_debit(debit.serial, day, "E0001", "余额不足", f"R{attempt}")
        assert (result["retryable"], result["cause"], result["manual"]) == (True, "borrower", False)
        if attempt < 3:
            assert (result["state"], result["next_attempt_on"]) == ("FAILED", failures[attempt + 1].isoformat())
    assert result["state"] == "EXHAUSTED" and result["next_attempt_on"] is None
    final = ledger.repository.get(debit.id)
    assert (final.retries, len(final.attempts), len(set(serials))) == (3, 4, 4)
    world.on(date(2025, 2, 21))
    assert ledger.retry_debits(date(2025, 2, 21))["retried"] == 0
    # the unpaid part stays due and, the borrower's cause, bears penalty: 02-16, 02-17 on 2,067.79,
    # 02-18..02-21 on 367.79
    status = ledger.loan_status(home.loan_no, date(2025, 2, 21))
    assert status["principal_due"] == "367.79"
    assert Money(status["penalty_accrued"]) == penalty(("2067.79", 2), ("367.79", 4)) == Money("0.67")
    books_ok(ledger)


def test_a_bank_cause_failure_waives_penalty_until_the_next_attempt(world: World) -> None:
    """批次被撤销: bank, retryable: automatic waiver (LN-8) to the next attempt; collected then: no penalty."""
    ledger, home = world.ledger(), world.worked
    debit = _first_debit(world, ledger, home)
    result = ledger.fail_debit(debit.serial, FIRST_DEDUCTION, "E0003", "批次被撤销", "R1")
    assert (result["state"], result["cause"], result["retryable"], result["next_attempt_on"]) == (
        "FAILED", "bank", True, "2025-02-18")
    waiver = ledger.loan(home.loan_no).book.waivers[-1]
    assert (waiver.start_on, waiver.end_on, waiver.instalment_number) == (date(2025, 2, 15), date(2025, 2, 18), 1)
    world.on(date(2025, 2, 18))
    ledger.retry_debits(date(2025, 2, 18))
    debit = submit(ledger, home, date(2025, 2, 18), "B0002")
    ledger.collect_debit(debit.serial, date(2025, 2, 18), "H2", Money("367.79"))
    card = ledger.loan_whole(home.loan_no).payments[-1]["figures"]
    assert card["penalty"] == ZERO  # 3 days late, all inside the waiver
    status = ledger.loan_status(home.loan_no, date(2025, 2, 18))
    assert (status["amount_due"], status["missed_total"]) == ("0.00", 0)
    books_ok(ledger, date(2025, 2, 18))


def test_a_borrower_cause_failure_then_payment_bears_penalty(world: World) -> None:
    """The same three days late for the borrower's cause: 2,067.79 x 2 days + 367.79 x 1 day → 0.53 (LN-7)."""
    ledger, home = world.ledger(), world.worked
    debit = _first_debit(world, ledger, home)
    ledger.fail_debit(debit.serial, FIRST_DEDUCTION, "E0002", "没有足够可用资金", "R1")
    world.on(date(2025, 2, 18))
    ledger.retry_debits(date(2025, 2, 18))
    debit = submit(ledger, home, date(2025, 2, 18), "B0002")
    assert penalty(("2067.79", 2), ("367.79", 1)) == Money("0.53")
    assert debit.amount == Money("367.79")  # the retry asks what the debit asked, at most what is due
    ledger.collect_debit(debit.serial, date(2025, 2, 18), "H2", Money("367.79"))
    card = ledger.loan_whole(home.loan_no).payments[-1]["figures"]
    assert (card["penalty"], card["interest"], card["principal"]) == (Money("0.53"), ZERO, Money("367.26"))
    assert ledger.loan_status(home.loan_no, date(2025, 2, 18))["amount_due"] == "0.53"
    books_ok(ledger)


@pytest.mark.parametrize("code, message", [("E0004", "校验位错误"), ("E9999", "未知错误")])
def test_a_centre_cause_failure_is_exhausted_and_flagged_for_manual_handling(world: World, code: str,
                                                                            message: str) -> None:
    """校验位错误 and any unknown code: the centre's, not retryable → EXHAUSTED, manual; waiver to next day."""
    ledger, home = world.ledger(), world.worked
    debit = _first_debit(world, ledger, home)
    result = ledger.fail_debit(debit.serial, FIRST_DEDUCTION, code, message, "R1")
    assert (result["state"], result["retryable"], result["cause"], result["manual"], result["next_attempt_on"]) == (
        "EXHAUSTED", False, "centre", True, None)
    final = ledger.repository.get(debit.id)
    assert final.failure["manual"] is True and final.failure["code"] == code
    world.on(date(2025, 2, 18))
    assert ledger.retry_debits(date(2025, 2, 18))["retried"] == 0
    assert ledger.loan_status(home.loan_no, date(2025, 2, 18))["principal_due"] == "367.79"
    books_ok(ledger)


# -- OFF-4: catch-up and exactly one outcome per (loan, date) ------------------------------------------
def test_a_catch_up_after_three_days_of_downtime_runs_each_date_in_order(world: World) -> None:
    ledger = world.ledger()
    for home in world.households:
        sign_mandate(ledger, home)
    first = run(world, ledger, FIRST_DEDUCTION)["dates"]
    assert [(r["deduction_on"], r["deducted"]) for r in first] == [("2025-02-17", 1)]
    # down on 02-18, 02-19 and 02-20; back on 02-20: the run covers the three dates, oldest first
    report = run(world, ledger, date(2025, 2, 20))["dates"]
    assert [(r["deduction_on"], r["loans"], r["deducted"]) for r in report] == [
        ("2025-02-18", 1, 1), ("2025-02-19", 1, 1), ("2025-02-20", 1, 1)]
    days = {e.loan_no: e.deduction_on for e in deductions_recorded(ledger)}
    assert days == {world.households[0].loan_no: FIRST_DEDUCTION, world.households[1].loan_no: date(2025, 2, 18),
                    world.households[2].loan_no: date(2025, 2, 19), world.households[3].loan_no: date(2025, 2, 20)}
    for home in world.households[1:]:  # 50,400.00 each: the borrower's fund covers it all
        assert ledger.account(home.borrower_account).balance == CREDITED - INSTALMENT
        assert ledger.account(home.spouse_account).balance == CREDITED
    log = ledger.repository.get(OffsetRunLog.create_id())
    assert log.last_completed == date(2025, 2, 20)
    assert ledger.run_offset(date(2025, 2, 20))["dates"] == []
    assert len(deductions_recorded(ledger)) == 4
    books_ok(ledger, date(2025, 2, 18), date(2025, 2, 19))


def test_a_run_with_nothing_due_records_nothing_due(world: World) -> None:
    """Instalment 1 was paid at the counter on its due date: SKIPPED(NOTHING_DUE), the funds untouched."""
    ledger, home = world.ledger(), world.worked
    sign_mandate(ledger, home)
    world.on(date(2025, 2, 15))
    ledger.pay_loan(home.loan_no, "2067.79", date(2025, 2, 15), "counter", "paid-1")
    run(world, ledger, FIRST_DEDUCTION)
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert (found.outcome, found.reason) == (SKIPPED, "NOTHING_DUE")
    assert ledger.account(home.borrower_account).balance == CREDITED
    books_ok(ledger)


def test_card_debit_serials_never_collide_with_payout_serials_of_the_same_day(world: World) -> None:
    """BNK-2: one daily sequence for every centre serial: a withdrawal paid out on the deduction day
    takes 202502170000001, the card debit the next one (they once collided and the run gave up)."""
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "1200.00", "600.00")
    sign_mandate(ledger, home)
    world.on(FIRST_DEDUCTION)
    paid_out = ledger.withdraw(home.spouse_account, "other", "100.00", FIRST_DEDUCTION, OTHER, "wd-0217")
    run(world, ledger, FIRST_DEDUCTION)
    debit = live_debit(ledger, home)
    assert (paid_out["serial"], debit.serial) == ("202502170000001", "202502170000002")
    assert debit.amount == Money("367.79")
    books_ok(ledger)


def test_a_catch_up_over_a_loan_posted_after_the_date_still_gives_it_an_outcome(world: World) -> None:
    """OFF-4: down over 02-17; on 02-18 the borrower paid 100.00 at the counter. The catch-up cannot
    value-date fund money before that payment (the book would re-allocate it), so the deduction of
    02-17 is value-dated 02-18; nothing is left without an outcome and the books stay balanced."""
    ledger, home = world.ledger(), world.worked
    set_balances(world, ledger, home, "5000.00", "500.00")
    sign_mandate(ledger, home)
    run(world, ledger, date(2025, 2, 14))
    world.on(date(2025, 2, 18))
    counter = ledger.pay_loan(home.loan_no, "100.00", date(2025, 2, 18), "counter", "C-0218")
    # instalment 1 unpaid at the end of 02-15, 02-16 and 02-17: 3 days x 2,067.79 → 0.74
    assert Money(counter["penalty"]) == penalty(("2067.79", 3)) == Money("0.74")
    report = run(world, ledger, date(2025, 2, 18))["dates"]
    assert [(r["deduction_on"], r["deducted"]) for r in report] == [
        ("2025-02-15", 0), ("2025-02-16", 0), ("2025-02-17", 1), ("2025-02-18", 0)]
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert (found.outcome, found.amount_due) == (DEDUCTED, Money("1968.53"))  # 2,067.79 + 0.74 - 100.00
    assert [(p["role"], str(p["amount"]), p["value_date"]) for p in found.parts] == [
        ("borrower", "1968.53", date(2025, 2, 18))]
    assert ledger.history(home.borrower_account)["lines"][-1]["value_date"] == "2025-02-18"
    assert ledger.loan_status(home.loan_no, date(2025, 2, 18))["amount_due"] == "0.00"
    books_ok(ledger, FIRST_DEDUCTION, date(2025, 2, 18))


def test_a_collection_on_a_host_date_before_a_later_counter_payment(world: World) -> None:
    ledger, home = world.ledger(), world.worked
    debit = _first_debit(world, ledger, home)
    world.on(date(2025, 2, 18))
    ledger.pay_loan(home.loan_no, "100.00", date(2025, 2, 18), "counter", "C-0218")
    due_before = ledger.loan(home.loan_no).book.amount_due(date(2025, 2, 19))
    world.on(date(2025, 2, 19))
    result = ledger.collect_debit(debit.serial, FIRST_DEDUCTION, "H1", Money("367.79"))
    # BNK-5: the bank took the money on its host date, before the counter payment the loan already took;
    # it is never refused: it waits in suspense (2102) with its bank reference for staff to apply.
    assert result["state"] == "COLLECTED" and result["suspense"] == "367.79" and result["applied"] == "0.00"
    assert ledger.debit_by_serial(debit.serial).state == "COLLECTED"
    assert ledger.loan(home.loan_no).book.amount_due(date(2025, 2, 19)) == due_before
    assert ledger.trial_balance().balance("2102") == Money("367.79")
    books_ok(ledger)


def test_the_mandate_ends_at_once_when_the_spouse_link_ends(world: World) -> None:
    """OFF-1: the spouse link ends → MandateEnded, both payer accounts are free, the next run skips the loan."""
    ledger, home = world.ledger(), world.worked
    sign_mandate(ledger, home)
    world.on(date(2025, 2, 10))
    result = ledger.unlink_spouses(home.borrower, home.spouse, date(2025, 2, 10))
    assert result["mandates_ended"] == [home.loan_no]
    mandate = ledger.mandate(home.loan_no)
    assert mandate.ended_on == date(2025, 2, 10) and mandate.end_reason == "SPOUSE_LINK_ENDED"
    assert ledger.account(home.borrower_account).agreement is None
    assert ledger.account(home.spouse_account).agreement is None
    world.on(FIRST_DEDUCTION)
    ledger.run_offset(FIRST_DEDUCTION)
    deduction = ledger.repository.get(Deduction.create_id(home.loan_no, FIRST_DEDUCTION))
    assert (deduction.outcome, deduction.reason) == ("SKIPPED", "MANDATE_ENDED")
    books_ok(ledger)


def test_takes_overdue_no_deducts_only_the_instalment_due_in_the_window(world: World,
                                                                        make_policy: Callable[..., Any]) -> None:
    """⚙ offset.takes_overdue = no: the run takes the instalment due on D only (2,067.79), not the overdue
    instalment 1 and its penalty; the money is still allocated in LN-5 order (penalty and oldest first)."""
    home = world.households[1]
    ledger = world.ledger(make_policy(offset={"takes_overdue": False}))
    set_balances(world, ledger, home, "1200.00", "500.00")
    world.on(date(2025, 2, 12))
    sign_mandate(ledger, home, date(2025, 2, 10), date(2025, 2, 12))
    run(world, ledger, date(2025, 2, 18))
    run(world, ledger, date(2025, 3, 18))
    found = deduction(ledger, home, date(2025, 3, 18))
    assert found.amount_due == INSTALMENT
    assert found.card_amount == INSTALMENT - Money("1700.00")
    assert found.parts[0]["penalty"] == Money("6.88")  # LN-5: the penalty (28 days) is paid first
    books_ok(ledger)


def test_no_fund_money_and_no_card_is_skipped_for_staff(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing available in the fund accounts and no repayment card: SKIPPED(NO_AVAILABLE_ACCOUNT)."""
    from ledger.aggregates.loan import Loan

    ledger, home = world.ledger(), world.worked
    sign_mandate(ledger, home)
    set_balances(world, ledger, home, "0.00", "0.00", on=date(2025, 2, 3))
    # a loan whose borrower never gave a card (LN-9): every replayed copy reads an empty card
    monkeypatch.setattr(Loan, "card", property(lambda self: {}, lambda self, value: None), raising=False)
    run(world, ledger, FIRST_DEDUCTION)
    found = deduction(ledger, home, FIRST_DEDUCTION)
    assert (found.outcome, found.reason, found.card_amount) == (SKIPPED, "NO_AVAILABLE_ACCOUNT", ZERO)
    books_ok(ledger)


def test_effective_only_after_one_regular_repayment_when_policy_says_so(world: World,
                                                                        make_policy: Callable[..., Any]) -> None:
    """OFF-1 ⚙ effective_after_regular_repayment: signed in January (effective 02-01), the mandate still
    skips 02-17 until the borrower has repaid once by card or counter; then the run deducts on 03-17."""
    home = world.worked
    ledger = world.ledger(make_policy(offset={"effective_after_regular_repayment": True}))
    set_balances(world, ledger, home, "5000.00", "500.00")
    sign_mandate(ledger, home)
    run(world, ledger, FIRST_DEDUCTION)
    skipped = deduction(ledger, home, FIRST_DEDUCTION)
    assert (skipped.outcome, skipped.reason) == (SKIPPED, "MANDATE_NOT_EFFECTIVE")
    assert ledger.account(home.borrower_account).balance == Money("5000.00")
    ledger.pay_loan(home.loan_no, "2067.79", FIRST_DEDUCTION, "counter", "regular-1")
    run(world, ledger, SECOND_DEDUCTION)
    found = deduction(ledger, home, SECOND_DEDUCTION)
    assert found.reason is None and found.amount_due == INSTALMENT
    assert ledger.account(home.borrower_account).balance == Money("5000.00") - INSTALMENT
    books_ok(ledger)
