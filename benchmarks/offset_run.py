"""Benchmark: one monthly offset day (按月冲还贷, OFF-2/OFF-4) over a realistically seeded store.

Seeds N loans a few years into repayment (most borrowers with a paying spouse), their fund accounts
with ~10 years of monthly contributions, mandates signed long ago; then runs the deduction day for
all N loans, re-runs it (the no-op path), measures the raw eventsourcing append rate on the same
store, and prints loans/s, events/s, RSS over the run and the ratio to the raw rate.

Usage: python benchmarks/offset_run.py --loans N [--db URL] [--history-years 10] [--profile]

Without ``--db`` a SQLite file in a temporary folder is used. A PostgreSQL URL without
``?schema=`` gets a scratch schema, dropped at the end unless ``--keep``.

The seeding writes events directly through the aggregates (the same methods the commands use),
in batches inside ``ledger.audit_bulk_load()`` so the audit chain is extended once at the end and
is complete before the timed run starts. ``seed`` is also what tests/test_offset_crash.py uses.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.domain import event  # noqa: E402

from ledger.aggregates.base import LedgerAggregate, derive_id, recording  # noqa: E402
from ledger.aggregates.documents import CENTRE_SERIAL_SCOPE, DailySequence, Payout, SerialRef  # noqa: E402
from ledger.aggregates.fund_account import FundAccount  # noqa: E402
from ledger.aggregates.loan import Loan  # noqa: E402
from ledger.aggregates.offset import Deduction, OffsetMandate  # noqa: E402
from ledger.aggregates.parties import Employer, Member  # noqa: E402
from ledger.app import Ledger  # noqa: E402
from ledger.application import CHINA_TZ, FixedClock, topic_of  # noqa: E402
from ledger.calendar import WorkingCalendar  # noqa: E402
from ledger.money import Money  # noqa: E402
from ledger.sampledata import card_number, credit_code, resident_id  # noqa: E402
from ledger.services.accounts import derive_account_no  # noqa: E402
from ledger.services.offset import deduction_window  # noqa: E402
from ledger.storage import drop_postgres_schema, parse_database_url  # noqa: E402

RUN_DAY = date(2025, 6, 16)  # a Monday; the window also covers Saturday 14th and Sunday 15th (LN-4)
DUE_DAY = 16
EMPLOYERS = 20
SEED_BATCH_LOANS = 100
RAW_BATCH_SIZE = 1000
BIRTH_DATES = [date(1970 + y, 1 + m, 1 + d) for y in range(25) for m in range(12) for d in range(28)]
CENTRE_ACCOUNT = "3100000001"
SPOUSE_EVERY = 10  # loans with index % 10 < 7 have a paying spouse (70 %)
SPOUSE_SHARE = 7
LOW_BALANCE_EVERY = 5  # one borrower in five withdrew most of the balance for the purchase and left work


def add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    return date(total // 12, total % 12 + 1, day.day)


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@dataclass
class Seeder:
    """Builds the aggregates of one loan's household and keeps the day sequences between batches."""

    ledger: Ledger
    run_day: date
    history_years: int
    months_back: tuple[int, int] = (24, 60)  # how far into repayment the loans are (from, to exclusive)
    terms_months: tuple[int, ...] = (360, 360, 240)
    sequences: dict[date, DailySequence] = field(default_factory=dict)
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    employer_ids: list[Any] = field(default_factory=list)

    def serial(self, day: date) -> tuple[str, DailySequence]:
        sequence = self.sequences.get(day)
        if sequence is None:
            sequence = self.sequences[day] = DailySequence(scope=CENTRE_SERIAL_SCOPE, day=day)
        (serial,) = sequence.take(1)
        return serial, sequence

    def paid_out(self, posting_id: str, account_no: str | None, payee: str, amount: Money, on: date,
                 purpose: str) -> tuple[Payout, list[Any]]:
        """A payout instructed and paid the same day (2101 back to zero), with its serial index."""
        serial, sequence = self.serial(on)
        payout = Payout(posting_id=posting_id, account_no=account_no, payee=payee, amount=amount, value_date=on,
                        serial=serial, purpose=purpose, bank_account=CENTRE_ACCOUNT)
        payout.settle(True, on, f"SEED{serial}")
        return payout, [payout, sequence, SerialRef(serial=serial, kind="payout", target_id=payout.id, detail={})]

    def member(self, index: int, male: bool, employer_id: Any, base: Money, opened: date,
               contributions_until: date) -> tuple[Member, FundAccount]:
        number = resident_id(BIRTH_DATES[index % len(BIRTH_DATES)], index // len(BIRTH_DATES), male)
        member = Member.register(number, f"{'借' if male else '配'}{index}", None, None, employer_id,
                                 derive_account_no(number), opened)
        account = FundAccount(account_no=member.account_no, member_id=member.id, employer_id=employer_id,
                              opened_on=opened)
        account.set_base(from_period=period_of(opened), base=base, floor=Money("2330.00"), cap=Money("32969.00"))
        share = Money.of(base.amount * Decimal("0.12"))
        month = opened
        while month < contributions_until:
            account.credit_contribution(period_of(month), "remittance", share, share, month.replace(day=10),
                                        f"seed:{period_of(month)}", CENTRE_ACCOUNT,
                                        f"seed:{member.account_no}:{period_of(month)}")
            month = add_months(month, 1)
        return member, account

    def household(self, index: int) -> list[Any]:
        """Borrower (+ spouse), accounts with history, a loan paid on time so far, a signed mandate."""
        employer_id = self.employer_ids[index % len(self.employer_ids)]
        opened = add_months(self.run_day.replace(day=1), -12 * self.history_years)
        low_back, high_back = self.months_back
        months_back = low_back + (index * 7) % (high_back - low_back)
        disbursed = add_months(self.run_day.replace(day=DUE_DAY), -months_back)
        low = index % LOW_BALANCE_EVERY == 0
        until = disbursed.replace(day=1) if low else self.run_day
        base = Money(f"{4000 + (index % 9) * 2000}.00")
        borrower, borrower_account = self.member(index, True, employer_id, base, opened, until)
        touched: list[Any] = [borrower, borrower_account]
        spouse = spouse_account = None
        if index % SPOUSE_EVERY < SPOUSE_SHARE:
            spouse, spouse_account = self.member(index, False, employer_id, Money("5000.00"), opened, until)
            borrower.link_spouse(spouse, opened)
            touched += [spouse, spouse_account]
        borrower.set_card("ICBC", card_number(index + 1))
        if low:  # the purchase withdrawal left little; the member then left work (sealed pays, OFF-2)
            for account in filter(None, (borrower_account, spouse_account)):
                keep = Money(f"{300 + (index * 37) % 1500}.00")
                amount = account.balance - keep
                posting = f"wd:seed:{account.account_no}"
                account.withdraw("purchase", "01", amount, disbursed, {"contract_number": f"S{index}"},
                                 Money("0.00"), posting, "卖方")
                touched += self.paid_out(posting, account.account_no, "卖方", amount, disbursed, "withdrawal:01")[1]
                account.seal(disbursed, "left employer")
        touched += self.loan(index, borrower, spouse, borrower_account, spouse_account, disbursed)
        return touched

    def loan(self, index: int, borrower: Member, spouse: Member | None, borrower_account: FundAccount,
             spouse_account: FundAccount | None, disbursed: date) -> list[Any]:
        applied = disbursed - timedelta(days=20)
        principal = Money(f"{200_000 + (index % 13) * 50_000}.00")
        months = self.terms_months[index % len(self.terms_months)]
        method = "equal-principal" if index % 10 == 9 else "equal-instalment"
        loan = Loan(loan_no=f"DK{applied:%Y%m%d}{index:07d}", borrower_id=borrower.id,
                    spouse_id=spouse.id if spouse else None, principal=principal, months=months, method=method,
                    second_home=False, price=principal.times(Decimal(2)), monthly_income=Money("30000.00"),
                    bank="ICBC", card=borrower.card, applied_on=applied, eligibility={"seeded": True},
                    borrower_name=borrower.name)
        loan.approve(applied + timedelta(days=2))
        posting = f"loan:{loan.loan_no}"
        payout, paid = self.paid_out(posting, None, "卖方", principal, disbursed, f"disbursement:{loan.loan_no}")
        loan.disburse(disbursed, self.ledger._terms(loan, disbursed, self.ledger.policy.at(disbursed)), payout.serial)
        for member in filter(None, (borrower, spouse)):
            member.mark_loan(loan_id=str(loan.id), mark="outstanding")
        window_start = min(deduction_window(self.run_day, self.calendar))
        earlier = loan.book.accounts_through(window_start - timedelta(days=1))
        for account in earlier:  # every earlier instalment paid by card on its deduction day
            paid_on = self.calendar.next_working_day(account.due_on)
            due = loan.book.amount_due(paid_on)
            if not due.is_zero:
                loan.pay(due, paid_on, "card", f"seed:{loan.loan_no}:{account.number}", CENTRE_ACCOUNT)
        accounts = [("borrower", borrower, borrower_account)]
        if spouse is not None and spouse_account is not None:
            accounts.append(("spouse", spouse, spouse_account))
        mandate = OffsetMandate(loan_no=loan.loan_no, loan_id=loan.id, drafted_on=disbursed, due_day=DUE_DAY,
                                payers=[{"role": role, "member_id": str(m.id), "account_no": a.account_no}
                                        for role, m, a in accounts])
        for _role, member, account in accounts:
            mandate.sign(member.id, disbursed)
            account.set_agreement(agreement=f"offset:{loan.loan_no}")
        loan.link_mandate(mandate_id=mandate.id)
        return [loan, mandate, *paid]


def seed(ledger: Ledger, loans: int, run_day: date = RUN_DAY, history_years: int = 10,
         progress: Callable[[int, int], None] | None = None, first_index: int = 0,
         months_back: tuple[int, int] = (24, 60), terms_months: tuple[int, ...] = (360, 360, 240)) -> dict[str, Any]:
    """Seed ``loans`` households (2 to 5 years into repayment by default); returns counts. Once per store."""
    clock_before = ledger.clock
    seeder = Seeder(ledger, run_day, history_years, months_back, terms_months)
    for number in range(EMPLOYERS):
        code = credit_code(9000 + number)
        if ledger.find(Employer.create_id(code)) is None:
            ledger.open_employer(code, f"基准单位{number}", "6222000000000000", date(2000, 1, 1), ratio="12")
        seeder.employer_ids.append(ledger.employer(code).id)
    events = 0
    # The ledger's interval snapshots re-read each aggregate from the store (STACK-NOTES); while seeding,
    # snapshots are written instead from the in-memory loans and accounts at their current version.
    ledger.snapshotting_intervals = {}
    snapshot_later: list[Any] = []
    try:
        with ledger.audit_bulk_load():
            for start in range(first_index, first_index + loans, SEED_BATCH_LOANS):
                stop = min(start + SEED_BATCH_LOANS, first_index + loans)
                with recording(ledger.clock.now()):
                    touched: dict[Any, Any] = {}
                    for index in range(start, stop):
                        for aggregate in seeder.household(index):
                            touched[aggregate.id] = aggregate
                pending = [a for a in touched.values() if a.pending_events]
                events += sum(len(a.pending_events) for a in pending)
                ledger.save(*pending)
                snapshot_later += [a for a in pending if isinstance(a, (Loan, FundAccount))]
                if progress:
                    progress(stop - first_index, loans)
    finally:
        del ledger.snapshotting_intervals  # back to the class's intervals
    latest = {a.id: a for a in snapshot_later}  # sealed snapshots need the chain: written once it is extended
    for start in range(0, len(latest), SEED_BATCH_LOANS * 5):
        ledger.write_snapshots(list(latest.values())[start:start + SEED_BATCH_LOANS * 5])
    assert ledger.clock is clock_before
    return {"loans": loans, "events": events}


# -- measuring ----------------------------------------------------------------------------------------------
def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Trivial(LedgerAggregate):
    """One event, a few fields: what the store can append when the ledger does no work."""

    @event("Made")
    def __init__(self, number: int, amount: Money):
        self.number = number
        self.amount = amount


def raw_append_rate(ledger: Ledger, count: int) -> float:
    """events/s of ``save`` in batches of RAW_BATCH_SIZE trivial aggregates (audit chain extended after)."""
    elapsed = 0.0
    with ledger.audit_bulk_load():
        for start in range(0, count, RAW_BATCH_SIZE):
            with recording(ledger.clock.now()):
                made = [Trivial(number=n, amount=Money("1.00"))
                        for n in range(start, min(count, start + RAW_BATCH_SIZE))]
            begun = time.perf_counter()
            ledger.save(*made)
            elapsed += time.perf_counter() - begun
    return count / elapsed


def notification_count(ledger: Ledger) -> int:
    """Events in the store: counted rows (failed PostgreSQL inserts consume ids: never subtract ids)."""
    table = ledger.recorder.events_table_name
    if ledger.storage.engine == "sqlite":
        with ledger.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            return cursor.fetchone()[0]
    with ledger.recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) AS n FROM {ledger.recorder.datastore.schema}.{table.split('.')[-1]}")
        return cursor.fetchone()["n"]


def timed_run(ledger: Ledger, day: date, samples: list[float], profile: bool) -> tuple[Any, float, str]:
    def progress(done: int, total: int) -> None:
        samples.append(rss_mib())

    profiler = cProfile.Profile() if profile else None
    begun = time.perf_counter()
    if profiler:
        profiler.enable()
    report = ledger.run_offset_date(day, progress=progress)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - begun
    text = ""
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(30)
        text = out.getvalue()
    return report, elapsed, text


def open_store(db: str | None) -> tuple[str, Callable[[], None]]:
    if not db:
        folder = Path(tempfile.mkdtemp(prefix="offset-bench-"))
        return f"sqlite:///{folder}/bench.sqlite3", lambda: None
    config = parse_database_url(db)
    if config.engine == "postgresql" and not config.schema:
        url = f"{db}{'&' if '?' in db else '?'}schema=bench_{uuid.uuid4().hex[:12]}"
        return url, lambda: drop_postgres_schema(parse_database_url(url))
    return db, lambda: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--db", default=None, help="store URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--history-years", type=int, default=10)
    parser.add_argument("--raw-events", type=int, default=0, help="trivial aggregates for the raw rate (default N)")
    parser.add_argument("--profile", action="store_true", help="cProfile the run and print the top entries")
    parser.add_argument("--keep", action="store_true", help="keep a scratch PostgreSQL schema")
    args = parser.parse_args()
    url, drop = open_store(args.db)
    clock = FixedClock(datetime(RUN_DAY.year, RUN_DAY.month, RUN_DAY.day, 18, tzinfo=CHINA_TZ))
    ledger = Ledger(url, clock=clock)
    try:
        begun = time.perf_counter()
        seeded = seed(ledger, args.loans, history_years=args.history_years,
                      progress=lambda done, total: print(f"  seeded {done}/{total}", end="\r", flush=True))
        seed_seconds = time.perf_counter() - begun
        stored = notification_count(ledger)
        print(f"engine={ledger.storage.engine} seeded loans={args.loans} events={seeded['events']:,} "
              f"in {seed_seconds:.0f}s; store holds {stored:,} events")

        samples: list[float] = [rss_mib()]
        report, elapsed, profile_text = timed_run(ledger, RUN_DAY, samples, args.profile)
        run_events = notification_count(ledger) - stored
        assert report.loans == args.loans and report.already == 0, report.as_dict()
        print(f"run: {report.loans} loans in {elapsed:.1f}s = {report.loans / elapsed:,.0f} loans/s, "
              f"{run_events:,} events = {run_events / elapsed:,.0f} events/s; deducted={report.deducted} "
              f"skipped={dict(report.skipped)} borrower={report.borrower_funds} spouse={report.spouse_funds} "
              f"cards={report.card} debits={report.debits_created}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"rss MiB during the run: start {samples[0]:.0f}, after first batch {samples[1]:.0f}, "
              f"max {max(samples):.0f}, end {samples[-1]:.0f}; peak rss {peak:.0f}")

        again_samples: list[float] = []
        again, again_elapsed, _ = timed_run(ledger, RUN_DAY, again_samples, False)
        assert again.already == args.loans and again.deducted == 0, again.as_dict()
        print(f"no-op re-run: {again.loans / again_elapsed:,.0f} loans/s ({again_elapsed:.2f}s)")

        raw = raw_append_rate(ledger, args.raw_events or args.loans)
        print(f"raw append on this store: {raw:,.0f} events/s; ratio run/raw = {run_events / elapsed / raw:.2f}")
        if profile_text:
            print(profile_text)
    finally:
        ledger.close()
        if not args.keep:
            drop()


if __name__ == "__main__":
    main()
