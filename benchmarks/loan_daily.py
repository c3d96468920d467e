"""Benchmark: loan schedules per second, then the daily loan job (LN-7) and loan status over N loans.

Part 1 times ``build_schedule``, ``compact_schedule`` and ``LoanBook.open`` for 360-month loans (every load of a
Loan aggregate opens its book, so this bounds everything else). Part 2 seeds N members with
``open_members_bulk`` and N loans written directly as aggregates (apply, approve, disburse at
the rate in force; most borrowers pay their first instalments on time, one in ``--late-every``
does not), in batches inside ``audit_bulk_load``; then it times ``Ledger.daily_loan_update(D)``
(interest falling due Dr 1102 / Cr 4001, ageing, LoanDefaulted) and ``Ledger.loan_status`` for
every loan, and prints loans/s and the peak RSS. The seeded disbursements skip the payout to
the seller (no 2101 sub-ledger): this measures the loan job, not the books.

Usage: python benchmarks/loan_daily.py --loans 100000 [--db URL] [--schedules 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
import resource
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, load_average, peak_rss_mib, raw_append_rates
from ledger.aggregates.base import recording
from ledger.aggregates.loan import Loan
from ledger.aggregates.parties import Member
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock
from ledger.loan_book import LoanBook, LoanTerms
from ledger.loan_math import EQUAL_INSTALMENT, EQUAL_PRINCIPAL, build_schedule, compact_schedule
from ledger.money import Money
from ledger.sampledata import credit_code, resident_id

EMPLOYERS = 50
OPENED_ON = date(2024, 6, 1)
DISBURSED_FROM = date(2025, 1, 6)  # disbursements spread over DISBURSEMENT_DAYS from here
DISBURSEMENT_DAYS = 20
STEADY_DAYS = 20  # days the job runs after its first run, each looking at the loans with something due
UPDATE_ON = date(2025, 4, 28)  # three instalments due for every loan
PAID_INSTALMENTS = 3
SEED_BATCH_LOANS = 500
CENTRE_ACCOUNT = "3100000001"


def bench_schedules(count: int) -> dict[str, float]:
    """Schedules per second for 360-month loans, both methods, and books opened per second."""
    started = time.perf_counter()
    for index in range(count):
        method = EQUAL_INSTALMENT if index % 2 == 0 else EQUAL_PRINCIPAL
        build_schedule(Money(f"{300000 + index}.00"), 360, Decimal("2.85"), method, date(2025, 1, 15))
    schedules = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for index in range(count):
        method = EQUAL_INSTALMENT if index % 2 == 0 else EQUAL_PRINCIPAL
        compact_schedule(Money(f"{300000 + index}.00"), 360, Decimal("2.85"), method, date(2025, 1, 15))
    compact = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for index in range(count):
        LoanBook.open(LoanTerms(Money(f"{300000 + index}.00"), 360, Decimal("2.85"), EQUAL_INSTALMENT,
                                date(2025, 1, 15)))
    books = count / (time.perf_counter() - started)
    return {"schedules_per_s": schedules, "compact_per_s": compact, "books_per_s": books}


def seed_members(ledger: Ledger, count: int) -> list[str]:
    employers = [credit_code(7000 + i) for i in range(EMPLOYERS)]
    for code in employers:
        ledger.open_employer(code, f"单位{code[-4:]}", "6222000000000000", OPENED_ON, ratio="12")
    rows = []
    for index in range(count):
        number = resident_id(date(1975 + index % 20, 1 + index % 12, 1 + index % 28), index // 240,
                             male=index % 2 == 0)
        rows.append({"id_number": number, "name": f"借款人{index}", "employer": employers[index % EMPLOYERS],
                     "base": "7777.00", "from_period": "2024-06"})
    ledger.open_members_bulk(rows, OPENED_ON)
    return [row["id_number"] for row in rows]


def new_loan(ledger: Ledger, index: int, member_id: Any, late_every: int) -> Loan:
    """Applied, approved and disbursed on one day; paid on time unless it is one of the late ones."""
    day = DISBURSED_FROM + timedelta(days=index % DISBURSEMENT_DAYS)
    principal = Money(f"{100000 + (index % 400) * 1000}.00")
    loan = Loan(loan_no=f"DK{day:%Y%m%d}{index:07d}", borrower_id=member_id, spouse_id=None, principal=principal,
                months=360, method=EQUAL_INSTALMENT if index % 4 else EQUAL_PRINCIPAL, second_home=False,
                price=principal.times(Decimal(2)), monthly_income=Money("20000.00"), bank="ICBC", card={},
                applied_on=day, eligibility={})
    loan.approve(day)
    loan.disburse(day, ledger._terms(loan, day, ledger.policy.at(day)), f"{day:%Y%m%d}{index:07d}")
    if late_every and index % late_every == 0:
        return loan
    for account in (loan.book.account(number) for number in range(1, PAID_INSTALMENTS + 1)):
        loan.pay(account.instalment.payment, account.due_on, "card", f"B{index}-{account.number}", CENTRE_ACCOUNT)
    return loan


def seed_loans(ledger: Ledger, clock: FixedClock, id_numbers: list[str], late_every: int) -> list[str]:
    loan_numbers = []
    for start in range(0, len(id_numbers), SEED_BATCH_LOANS):
        batch = id_numbers[start:start + SEED_BATCH_LOANS]
        with recording(clock.now()):
            loans = [new_loan(ledger, start + offset, Member.create_id(number), late_every)
                     for offset, number in enumerate(batch)]
        ledger.save(*loans)
        loan_numbers += [loan.loan_no for loan in loans]
    return loan_numbers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--schedules", type=int, default=2_000)
    parser.add_argument("--late-every", type=int, default=20, help="one loan in this many misses its instalments")
    parser.add_argument("--db", default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last line")
    args = parser.parse_args()

    figures = bench_schedules(args.schedules)
    print(f"schedules: {figures['schedules_per_s']:,.0f} schedules/s (360 months as Instalment rows, "
          f"build_schedule), {figures['compact_per_s']:,.0f}/s as integer rows (compact_schedule), "
          f"{figures['books_per_s']:,.0f} books/s (LoanBook.open)", flush=True)

    scratch = tempfile.TemporaryDirectory(prefix="gjj-loan-bench-")  # removed at exit
    url = args.db or f"sqlite:///{scratch.name}/loans.sqlite3"
    clock = FixedClock(datetime(2025, 1, 26, 9, tzinfo=CHINA_TZ))
    ledger = Ledger(url, clock=clock)
    started = time.perf_counter()
    with ledger.audit_bulk_load():
        id_numbers = seed_members(ledger, args.loans)
        members_s = time.perf_counter() - started
        clock.set_day(UPDATE_ON, hour=7)
        loan_numbers = seed_loans(ledger, clock, id_numbers, args.late_every)
    ids = ledger.loan_ids()
    for start in range(0, len(ids), 1000):  # as a centre's loans have them: a sealed snapshot each
        ledger.write_snapshots(list(ledger.load_many(ids[start:start + 1000]).values()))
    seeded_s = time.perf_counter() - started
    print(f"seed: {args.loans:,} members in {members_s:.1f}s, loans and snapshots in {seeded_s - members_s:.1f}s "
          f"rss={peak_rss_mib():.0f}MiB", flush=True)

    figures.update(store=ledger.storage.engine, n=args.loans, load_average_before=load_average())
    started = time.perf_counter()
    first = ledger.daily_loan_update(UPDATE_ON)
    first_s = time.perf_counter() - started
    print(f"daily_loan_update({UPDATE_ON}), first run (every loan): {first['loans']:,} loans in {first_s:.1f}s "
          f"({first['loans'] / first_s:,.0f} loans/s) accrued={first['accrued']:,} defaulted={first['defaulted']:,}",
          flush=True)
    looked, daily_s = 0, 0.0
    for offset in range(1, STEADY_DAYS + 1):  # the job day after day, as the scheduler runs it
        day = UPDATE_ON + timedelta(days=offset)
        clock.set_day(day, hour=7)
        started = time.perf_counter()
        looked += ledger.daily_loan_update(day)["loans"]
        daily_s += time.perf_counter() - started
    print(f"daily_loan_update on the {STEADY_DAYS} days after: looked at {looked / STEADY_DAYS:,.0f} loans a day "
          f"(those with something due) of {len(ids):,}; {daily_s / STEADY_DAYS:.2f}s a day = "
          f"{len(ids) * STEADY_DAYS / daily_s:,.0f} centre loans/s", flush=True)
    figures.update(first_run_loans_per_s=first["loans"] / first_s, daily_loans_looked_at=looked / STEADY_DAYS,
                   daily_centre_loans_per_s=len(ids) * STEADY_DAYS / daily_s, daily_seconds=daily_s / STEADY_DAYS)

    started = time.perf_counter()
    overdue = 0
    for loan_no in loan_numbers:
        overdue += ledger.loan_status(loan_no, UPDATE_ON)["days_past_due"] > 0
    status_s = time.perf_counter() - started
    print(f"loan_status for all: {len(loan_numbers):,} in {status_s:.1f}s ({len(loan_numbers) / status_s:,.0f} "
          f"loans/s) overdue={overdue:,}", flush=True)
    started = time.perf_counter()
    report = ledger.delinquent_loans(UPDATE_ON)
    delinquent_s = time.perf_counter() - started
    print(f"delinquent_loans: {delinquent_s:.1f}s ({len(loan_numbers) / delinquent_s:,.0f} loans/s) "
          f"counts={report['counts']}", flush=True)
    figures.update(status_loans_per_s=len(loan_numbers) / status_s, peak_rss_mib=peak_rss_mib(),
                   **raw_append_rates(ledger, min(args.loans, 20_000)), load_average=load_average())
    emit(figures, args.json)
    ledger.close()
    scratch.cleanup()


if __name__ == "__main__":
    main()
