"""``gjj demo``: a sample centre run month by month on a fresh embedded SQLite file.

It opens employers and members (some married couples), then for each month
registers every employer's remittance list, receives the bank's money,
pays a few withdrawals, settles interest each 30 June, and ends with a
summary a finance officer would read: members, Σ balances, fund liability
and the trial balance. A simulated clock stands for the wall clock, so the
whole history is recorded at the times it would have been.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.aggregates.base import LedgerRuleError
from ledger.application import CHINA_TZ, FixedClock
from ledger.money import Money
from ledger.sampledata import credit_code, resident_id
from ledger.services.accounts import share
from ledger.services.contributions import RemittanceLine

DEMO_START = date(2024, 7, 1)
EMPLOYERS = 12
SEED = 20240701
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
EMPLOYER_NAMES = ["锦江建设", "天府软件", "蜀都医院", "青羊中学", "武侯物流", "成华机械", "金牛商贸", "高新电子",
                  "双流航空", "温江食品", "郫都制药", "新都纺织"]


@dataclass
class DemoMember:
    id_number: str
    name: str
    employer: str
    account_no: str
    base: Money
    spouse: str | None = None


@dataclass
class DemoState:
    ledger: Any
    clock: FixedClock
    rng: random.Random
    employers: list[str] = field(default_factory=list)
    members: list[DemoMember] = field(default_factory=list)
    withdrawals: int = 0
    refused: int = 0
    receipts: int = 0


def add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    return date(total // 12, total % 12 + 1, day.day)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")


def open_centre(state: DemoState, member_count: int) -> None:
    ledger, rng = state.ledger, state.rng
    for index in range(EMPLOYERS):
        code = credit_code(1000 + index)
        ledger.open_employer(code, f"{EMPLOYER_NAMES[index]}有限公司", f"62220200{index:08d}", DEMO_START,
                             ratio=rng.choice(["5", "8", "10", "12"]))
        state.employers.append(code)
    for index in range(member_count):
        birth = date(1965 + rng.randrange(35), rng.randrange(1, 13), rng.randrange(1, 29))
        number = resident_id(birth, index, male=index % 2 == 0)
        employer = state.employers[index % EMPLOYERS]
        opened = ledger.open_member(number, _name(rng), employer, DEMO_START)
        base = Money(Decimal(rng.randrange(2400, 30000)))
        ledger.open_account(number, DEMO_START, base=str(base), from_period=DEMO_START.strftime("%Y-%m"))
        state.members.append(DemoMember(number, opened["name"], employer, opened["account_no"], base))
    _marry(state)


def _marry(state: DemoState) -> None:
    """About a third of members are couples (one man, one woman)."""
    men = [m for m in state.members if int(m.id_number[16]) % 2 == 1]
    women = [m for m in state.members if int(m.id_number[16]) % 2 == 0]
    for husband, wife in list(zip(men, women))[: len(state.members) // 6]:
        state.ledger.link_spouses(husband.id_number, wife.id_number, DEMO_START)
        husband.spouse, wife.spouse = wife.id_number, husband.id_number


def run_month(state: DemoState, month: date) -> None:
    ledger, rng = state.ledger, state.rng
    period = month.strftime("%Y-%m")
    state.clock.set_day(month.replace(day=5))
    for employer in state.employers:
        staff = [m for m in state.members if m.employer == employer]
        ratios = ledger.employer(employer).ratios_for(period)
        lines = [RemittanceLine(i + 1, m.account_no, m.base, share(m.base, ratios[0], "fen"),
                                share(m.base, ratios[1], "fen")) for i, m in enumerate(staff)]
        result = ledger.register_remittance(employer, period, "remittance", f"HJ{period.replace('-', '')}", lines,
                                            month.replace(day=5))
        arrival = month.replace(day=8)
        state.clock.set_day(arrival)
        ledger.receive("ICBC", arrival.strftime("%Y%m%d"), f"R{period}{employer[-6:]}", ledger.centre_bank_account,
                       result["total"], arrival, result["serial"])
        state.receipts += 1
    _some_withdrawals(state, month)


def _some_withdrawals(state: DemoState, month: date) -> None:
    ledger, rng = state.ledger, state.rng
    day = month.replace(day=20)
    state.clock.set_day(day)
    for member in rng.sample(state.members, k=max(1, len(state.members) // 200)):
        account = ledger.account(member.account_no)
        if account.state != "NORMAL" or account.balance < Money("3000.00"):
            continue
        try:
            result = ledger.withdraw(member.account_no, "rent", "1500.00", day,
                                     {"contract_number": f"ZL{day:%Y%m}{member.account_no[-4:]}",
                                      "monthly_rent": "1800", "months": "1"},
                                     f"demo-rent-{member.account_no}-{day:%Y%m}")
        except LedgerRuleError:
            state.refused += 1  # e.g. WD-1 next-allowed date: the centre refuses, the demo goes on
            continue
        if "serial" in result and not result.get("repeat"):
            ledger.settle_payout(result["serial"], True, day, f"ICBC/{day:%Y%m%d}/P{result['serial'][-7:]}")
            state.withdrawals += 1


def settle_year_if_due(state: DemoState, month: date) -> dict[str, Any] | None:
    if month.month != 7 or month <= DEMO_START:
        return None
    state.clock.set_day(month.replace(day=1), hour=2)
    return state.ledger.settle_interest(date(month.year, 6, 30))


def summary(state: DemoState, interest_runs: list[dict[str, Any]]) -> dict[str, Any]:
    ledger = state.ledger
    trial = ledger.trial_balance()
    books = ledger.check_books()
    balances = Money.sum(ledger.account(m.account_no).balance for m in state.members)
    couples = sum(1 for m in state.members if m.spouse) // 2
    return {
        "store": ledger.storage.url, "centre": ledger.policy.centre_name, "employers": len(state.employers),
        "members": len(state.members), "married_couples": couples, "bank_receipts": state.receipts,
        "withdrawals": state.withdrawals, "withdrawals_refused": state.refused, "interest_settlements": interest_runs,
        "sum_of_balances": str(balances), "fund_liability_2001": str(trial.balance("2001")),
        "trial_balance": {"debit_side": str(trial.debit_side_total), "credit_side": str(trial.credit_side_total),
                          "balanced": trial.difference.is_zero, "accounts": trial.rows()},
        "books_check": books,
    }


def _verify(ledger: Any) -> dict[str, Any]:
    report = ledger.audit.verify()
    head = ledger.audit.head()
    return {"ok": report.ok, "checked": report.checked, "head_position": head.position, "head_hash": head.hash}


def run_demo(path: Path, members: int = 1000, months: int = 24, out: Path | None = None,
             console: Console | None = None) -> dict[str, Any]:
    from ledger.app import Ledger

    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    clock = FixedClock(datetime(DEMO_START.year, DEMO_START.month, 1, 9, tzinfo=CHINA_TZ))
    ledger = Ledger(f"sqlite:///{path}", clock=clock, env={"AGGREGATE_CACHE_MAXSIZE": "20000"})
    state = DemoState(ledger, clock, random.Random(SEED))
    interest_runs = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console or Console(stderr=True)) as bar:
        task = bar.add_task("opening the centre", total=months + 1)
        with ledger.audit_bulk_load():  # chain once at the end instead of after every save (AUD-1)
            open_centre(state, members)
            for index in range(months):
                month = add_months(DEMO_START, index)
                bar.update(task, advance=1, description=f"month {month:%Y-%m}")
                settled = settle_year_if_due(state, month)
                if settled:
                    interest_runs.append(settled)
                run_month(state, month)
        bar.update(task, advance=1, description="summary")
        result = summary(state, interest_runs)
        result["audit_verify"] = _verify(ledger)
    ledger.close()
    return result
