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
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.loan import Loan
from ledger.application import CHINA_TZ, FixedClock
from ledger.money import ZERO, Money
from ledger.sampledata import card_number, credit_code, resident_id
from ledger.services.accounts import share
from ledger.services.contributions import RemittanceLine

DEMO_START = date(2024, 7, 1)
LOANS_FROM = date(2025, 1, 13)  # after six credited months (LN-1)
LOAN_SHARE_OF_COUPLES = 0.6
POOR_BORROWERS = 4  # their cards keep failing: the overdue loans of the summary
BANK_REVOKES_PER_MILLE = 30  # 批次被撤销: the bank's fault, retried, waived
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
    loans: list[str] = field(default_factory=list)
    poor: set[str] = field(default_factory=set)
    card_only: dict[str, int] = field(default_factory=dict)  # loan -> due day
    out: Path = Path("gjj-data/demo-out")
    debit_results: dict[str, int] = field(default_factory=dict)
    offset_totals: dict[str, Money] = field(default_factory=dict)
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


def _loan_terms(ledger: Any, husband: DemoMember, wife: DemoMember, rng: random.Random,
                share: Decimal) -> tuple[str, int, str, str]:
    """A loan of ``share`` of what LN-1 allows (balances × 25, capped), in whole ten-thousands."""
    balances = ledger.account(husband.account_no).balance + ledger.account(wife.account_no).balance
    ceiling = min(balances.times(Decimal(25)), Money("1000000.00"))
    principal = Money(Decimal(int(ceiling.amount * share / 10000) * 10000))
    age = LOANS_FROM.year - int(husband.id_number[6:10])
    months = max(60, min(rng.choice([240, 300, 360]), (64 - age) * 12))
    return str(principal), months, str(principal.times(Decimal("1.5"))), str(principal.times(Decimal("0.03")))


def open_loans(state: DemoState) -> None:
    """Part of the married members borrow; most sign the offset mandate (both spouses)."""
    ledger, rng = state.ledger, state.rng
    couples = [(m, next(w for w in state.members if w.id_number == m.spouse)) for m in state.members
               if m.spouse and int(m.id_number[16]) % 2 == 1]
    for index, (husband, wife) in enumerate(couples[: int(len(couples) * LOAN_SHARE_OF_COUPLES)]):
        day = LOANS_FROM + timedelta(days=index % 8)
        state.clock.set_day(day)
        ledger.set_card(husband.id_number, "ICBC", card_number(index + 1))
        poor = len(state.poor) < POOR_BORROWERS and index % 7 == 3
        principal, months, price, income = _loan_terms(ledger, husband, wife, rng,
                                                       Decimal("0.95") if poor else Decimal("0.45"))
        if Money(principal) < Money("50000.00"):
            continue
        try:
            applied = ledger.apply_for_loan(husband.id_number, principal, months, "equal-instalment", price, income,
                                            day, "ICBC")
        except LedgerRuleError:
            state.refused += 1
            continue
        loan_no = applied["loan_no"]
        ledger.approve_loan(loan_no, day)
        disbursed = ledger.disburse_loan(loan_no, day)
        ledger.settle_payout(disbursed["payout_serial"], True, day, f"ICBC/{day:%Y%m%d}/D{index:05d}")
        state.loans.append(loan_no)
        if index % 10 == 9:  # one in ten repays at the bank without a mandate (非委扣)
            state.card_only[loan_no] = day.day
        else:
            ledger.create_mandate(loan_no, day, with_spouse=index % 5 != 4)
            for payer in ledger.mandate(loan_no).payers:
                ledger.sign_mandate(loan_no, ledger.repository.get(UUID(payer["member_id"])).id_number, day)
        if poor:
            state.poor.add(loan_no)


def play_bank(state: DemoState, day: date) -> None:
    """The entrusted bank answers the day's debit file (OFF-3), through the national files."""
    from ledger.demo_bank import exchange_debit_files

    counts = exchange_debit_files(state.ledger, day, state.out / "bank", state.poor, state.rng,
                                  BANK_REVOKES_PER_MILLE)
    for outcome, count in counts.items():
        state.debit_results[outcome] = state.debit_results.get(outcome, 0) + count


def bank_posts_repayments(state: DemoState, day: date) -> None:
    """Loans without a mandate (非委扣) are repaid at the bank, which posts them in real time."""
    ledger = state.ledger
    due_today = [no for no, due_day in state.card_only.items() if due_day <= day.day]
    for loan in ledger.load_many(Loan.create_id(no) for no in due_today).values():
        if loan.state != "ACTIVE" or not any(a.due_on == day for a in loan.book.accounts_through(day)):
            continue
        due = loan.book.amount_due(max(day, loan.book.last_on))
        if due > ZERO:
            ledger.pay_loan(loan.loan_no, str(due), day, "api", f"ICBC/{day:%Y%m%d}/{loan.loan_no}")


def run_days(state: DemoState, month: date) -> None:
    """The scheduler's daily job for the month's working days, then the bank's answers."""
    from scheduler.jobs import run_day

    ledger_calendar = state.ledger.calendar
    last = add_months(month.replace(day=1), 1) - timedelta(days=1)
    day = month.replace(day=9)
    while day <= last:
        if (day.day <= 25 and ledger_calendar.is_working_day(day)) or day == last:
            state.clock.set_day(day, hour=7)
            report = run_day(state.ledger, day, loan_update=day == last)
            for dated in report["offset"]["dates"]:
                for key in ("from_borrower_funds", "from_spouse_funds", "to_cards"):
                    state.offset_totals[key] = state.offset_totals.get(key, ZERO) + Money(dated[key])
            state.clock.set_day(day, hour=16)
            play_bank(state, day)
            bank_posts_repayments(state, day)
        day += timedelta(days=1)


def loan_summary(state: DemoState) -> dict[str, Any]:
    ledger = state.ledger
    last_day = state.clock.now().date()
    loans = list(ledger.load_many(Loan.create_id(no) for no in state.loans).values())
    delinquent = ledger.delinquent_loans(last_day)
    return {
        "loans": len(loans), "with_offset_mandate": sum(1 for l in loans if l.mandate_id),
        "outstanding_principal": str(Money.sum(l.book.outstanding_principal for l in loans)),
        "offset_source_split": {k: str(v) for k, v in state.offset_totals.items()},
        "card_debit_results": state.debit_results,
        "delinquent_by_bucket": delinquent["counts"],
        "delinquent_loans": [row for rows in delinquent["buckets"].values() for row in rows],
    }


def summary(state: DemoState, interest_runs: list[dict[str, Any]]) -> dict[str, Any]:
    ledger = state.ledger
    trial = ledger.trial_balance()
    books = ledger.check_books()
    balances = Money.sum(ledger.account(m.account_no).balance for m in state.members)
    couples = sum(1 for m in state.members if m.spouse) // 2
    return {
        "store": ledger.storage.url, "centre": ledger.policy.centre_name, "employers": len(state.employers),
        "members": len(state.members), "married_couples": couples, "bank_receipts": state.receipts,
        "withdrawals": state.withdrawals, "refused_by_rules": state.refused,
        "interest_settlements": _interest_runs(ledger), "lending": loan_summary(state),
        "sum_of_balances": str(balances), "fund_liability_2001": str(trial.balance("2001")),
        "trial_balance": {"debit_side": str(trial.debit_side_total), "credit_side": str(trial.credit_side_total),
                          "balanced": trial.difference.is_zero, "accounts": trial.rows()},
        "books_check": books,
    }


def write_statements(state: DemoState, day: date) -> dict[str, Any]:
    """A few members' documents (ST-1), JSON and PDF, from the read models."""
    import json

    from ledger.projections import Projector, ReadModel
    from ledger.reports import (account_statement_to_json, contribution_certificate_to_json,
                                render_account_statement_pdf, render_contribution_certificate_pdf,
                                render_repayment_statement_pdf, repayment_statement_to_json)
    from ledger.statements import account_statement, contribution_certificate, repayment_statement

    ledger, folder = state.ledger, state.out / "statements"
    folder.mkdir(parents=True, exist_ok=True)
    projector = Projector.for_ledger(ledger)
    projector.catch_up()
    read, written = ReadModel(projector.engine), []
    centre = ledger.policy.centre_name
    for member in state.members[:2]:
        doc = account_statement(read, member.account_no, DEMO_START, day, issued_on=day, centre_name=centre)
        written += _write(folder / f"account-{member.account_no}", account_statement_to_json(doc),
                          render_account_statement_pdf(doc))
        cert = contribution_certificate(read, ledger.audit, ledger.policy, member.id_number, day, issued_on=day,
                                        mask_id=True)
        written += _write(folder / f"certificate-{member.account_no}", contribution_certificate_to_json(cert),
                          render_contribution_certificate_pdf(cert))
    for loan_no in state.loans[:2]:
        doc = repayment_statement(read, loan_no, day, issued_on=day, centre_name=centre)
        written += _write(folder / f"repayment-{loan_no}", repayment_statement_to_json(doc),
                          render_repayment_statement_pdf(doc))
    projector.close()
    return {"folder": str(folder), "files": [p.name for p in written]}


def _write(stem: Path, payload: dict[str, Any], pdf: bytes) -> list[Path]:
    import json

    json_path, pdf_path = stem.with_suffix(".json"), stem.with_suffix(".pdf")
    json_path.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    pdf_path.write_bytes(pdf)
    return [json_path, pdf_path]


def _interest_runs(ledger: Any) -> list[dict[str, Any]]:
    from ledger.aggregates.offset import OffsetRunLog

    log = ledger.find(OffsetRunLog.create_id("interest"))
    return [] if log is None else [report for report in log.reports.values() if report.get("settled")]


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
    ledger = Ledger(f"sqlite:///{path}", clock=clock)
    state = DemoState(ledger, clock, random.Random(SEED), out=out or Path("gjj-data/demo-out"))
    interest_runs = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console or Console(stderr=True)) as bar:
        task = bar.add_task("opening the centre", total=months + 1)
        with ledger.audit_bulk_load():  # chain once at the end instead of after every save (AUD-1)
            open_centre(state, members)
            for index in range(months):
                month = add_months(DEMO_START, index)
                bar.update(task, advance=1, description=f"month {month:%Y-%m}")
                run_month(state, month)
                if month == LOANS_FROM.replace(day=1):
                    open_loans(state)
                if month >= LOANS_FROM.replace(day=1):
                    run_days(state, month)
        bar.update(task, advance=1, description="summary")
        result = summary(state, interest_runs)
        last_day = clock.now().date()
        from ledger.demo_bank import reconcile_demo

        result["reconciliation"] = reconcile_demo(ledger, last_day, state.out / "bank")
        result["statements"] = write_statements(state, last_day)
        result["audit_verify"] = _verify(ledger)
    ledger.close()
    return result
