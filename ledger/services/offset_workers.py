"""The monthly offset day (按月冲还贷) in several worker processes, on PostgreSQL (issue 14, item 4).

The day's loans are split into disjoint slices (every N-th row of the mandate index, so each slice holds
as many loans as the others); each worker process opens its own ledger on the same store and runs its
slice in batches exactly as a single run does (``OffsetCommands.run_offset_date``): its loans are loaded,
decided and saved a batch at a time, card-debit serials come from blocks each worker reserves for itself
(``LedgerBase.reserve_serials``), so no counter is shared on the hot path. Exactly-once is the ledger's,
not the pool's: a deduction's id derives from (loan, date), so a slice run twice, or two runs at once,
never deduct twice (OFF-4). The parent waits for every worker, adds their reports and only then records
the date as completed.

SQLite has one writer: there N is 1 and asking for more is refused, naming the store.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, wait
from datetime import date, datetime
from typing import Any, Callable

from ledger.rules import LedgerRuleError

WORKERS_MAX = 16
PROGRESS_POLL_SECONDS = 0.2

_done: Any = None  # the shared counter of loans done, in each worker


class WorkersError(LedgerRuleError):
    rule = "OFF-4"


def check_workers(engine: str, workers: int) -> int:
    """How many processes may run the day: 1 on SQLite (one writer), up to ``WORKERS_MAX`` on PostgreSQL."""
    if not 1 <= workers <= WORKERS_MAX:
        raise WorkersError(f"workers lie in 1..{WORKERS_MAX}, got {workers}", field="workers")
    if workers > 1 and engine != "postgresql":
        raise WorkersError(f"the {engine} store has one writer: run with --workers 1 (PostgreSQL runs several)",
                           field="workers")
    return workers


def _start_worker(counter: Any) -> None:
    global _done
    _done = counter


def _run_slice(url: str, policy: Any, fixed_at: datetime | None, day: date, rows: list[dict[str, Any]]) -> Any:
    """One worker: its own ledger on the store, its slice of the day, its report."""
    from ledger.app import Ledger
    from ledger.application import FixedClock

    ledger = Ledger(url, policy=policy, clock=FixedClock(fixed_at) if fixed_at is not None else None)
    try:
        def advance(count: int, _total: int) -> None:
            with _done.get_lock():
                _done.value += count
        return ledger.run_offset_date(day, rows, advance)
    finally:
        ledger.close()


def run_in_workers(ledger: Any, day: date, rows: list[dict[str, Any]], workers: int,
                   progress: Callable[[int, int], None] | None = None) -> Any:
    """The day's report from ``workers`` processes, each running every ``workers``-th loan."""
    from ledger.application import FixedClock
    from ledger.services.offset import DayReport

    slices = [rows[index::workers] for index in range(workers)]
    fixed_at = ledger.clock.at if isinstance(ledger.clock, FixedClock) else None
    context = multiprocessing.get_context("spawn")  # no inherited connection pools or threads
    counter = context.Value("i", 0)
    report, reported = DayReport(day), 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                             initargs=(counter,)) as pool:
        futures = [pool.submit(_run_slice, ledger.storage.url, ledger.policy, fixed_at, day, part)
                   for part in slices if part]
        while True:
            finished, pending = wait(futures, timeout=PROGRESS_POLL_SECONDS)
            if progress is not None and counter.value > reported:
                progress(counter.value - reported, len(rows))
                reported = counter.value
            if not pending:
                break
        for future in finished:
            report.add(future.result())  # a worker's failure is raised here: the date is not completed
    return report

