"""Seeding a store the slow way: day by day, each household's steps saved, the jobs run by the commands.

This is the yardstick of ``benchmarks.seed_store``: for every day any household changes, the clock is
set to that day, the ledger's own commands run the jobs a real centre runs that day (``reprice_loans``
on 1 January, ``settle_interest`` after 30 June, ``daily_loan_update`` on each due date — the scheduler's
order), then every household applies its steps (``benchmarks.seed_household``) and one ``save`` stores
them, chained by the ledger as any save is (AUD-1). At the end each account and loan is loaded from the
store and its compact snapshot written, as the bulk seeder writes it. About a save per day: fit for a
few households (tests/test_bulk_seeder.py), far too slow for a benchmark store.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable

from ledger.aggregates.base import recording
from ledger.aggregates.fund_account import FundAccount
from ledger.aggregates.loan import Loan
from ledger.application import FixedClock

from benchmarks.seed_household import Household, SeedPlan, SequenceBook, job_days, open_employers

JOB_ORDER = ("reprice", "interest", "accrue")  # scheduler.jobs.run_day's order


def seed_by_commands(ledger: Any, plan: SeedPlan, indices: Iterable[int]) -> dict[str, Any]:
    """Seed the households with these indices (once per store); returns counts."""
    assert isinstance(ledger.clock, FixedClock), "the days are set on the ledger's clock"
    employer_ids = open_employers(ledger)
    serials = SequenceBook(ledger)
    households = [Household(ledger, plan, index, employer_ids[plan.shape(index).employer], serials)
                  for index in plan.order(indices)]
    steps = [household.schedule() for household in households]
    jobs: dict[Any, set[str]] = {}
    for household in households:
        for day, names in job_days(plan, ledger.policy, household).items():
            jobs.setdefault(day, set()).update(names)
    days = sorted(set(jobs).union(*steps))
    ledger.snapshotting_intervals = {}  # as the bulk seeder: one snapshot at the end, none on the way
    saves = 0
    try:
        for day in days:
            ledger.clock.set_day(day)
            run_jobs(ledger, households, day, jobs.get(day, set()))
            touched: dict[Any, Any] = {}
            with recording(ledger.clock.now()):
                for household, calendar in zip(households, steps):
                    for aggregate in household.run(day, calendar.get(day, [])):
                        touched[aggregate.id] = aggregate
            pending = [aggregate for aggregate in touched.values() if aggregate.pending_events]
            if pending:
                ledger.save(*pending)
                saves += 1
    finally:
        del ledger.snapshotting_intervals
    snapshots = write_snapshots(ledger, households)
    return {"households": len(households), "days": len(days), "saves": saves, "snapshots": snapshots}


def run_jobs(ledger: Any, households: list[Household], day: Any, names: set[str]) -> None:
    """The day's jobs through the commands; the households then reload what the jobs changed."""
    for name in sorted(names, key=JOB_ORDER.index):
        if name == "reprice":
            ledger.reprice_loans(day)
        elif name == "interest":
            ledger.settle_interest(day - timedelta(days=1))
        else:
            ledger.daily_loan_update(day)
    reload = {"reprice": ("loan",), "accrue": ("loan",), "interest": ("borrower_account", "spouse_account")}
    roles = {role for name in names for role in reload[name]}
    for household in households:
        for role in roles & set(household.aggregates):
            household.aggregates[role] = ledger.repository.get(household.aggregates[role].id)


def write_snapshots(ledger: Any, households: list[Household]) -> int:
    """Each account's and loan's compact snapshot at its last version, from the store's events."""
    stored = [ledger.replay_whole(aggregate.id) for household in households
              for aggregate in household.aggregates.values() if isinstance(aggregate, (FundAccount, Loan))]
    ledger.write_snapshots(stored, replace_older=True)  # sealed, as every save writes them (ledger.snapshot_seal)
    return len(stored)
