"""``gjj offset run --workers N`` (issue 14, item 4): the day split over processes on PostgreSQL.

Two identically seeded PostgreSQL stores run the same deduction day, one with one process and one with
two (and each worker reserving its own blocks of serials): every loan gets exactly one outcome (the
exactly-once checks of test_offset_crash), the outcomes and the books are the same loan for loan, and
the audit chain verifies. On SQLite more than one worker is refused, naming the store; so is a count
beyond the limit.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.offset_run import RUN_DAY
from ledger.aggregates.offset import Deduction
from ledger.app import Ledger
from ledger.application import topic_of
from ledger.services.offset_workers import WORKERS_MAX, WorkersError
from tests.conftest import drop_scratch, postgres_reachable_or_fail, scratch_postgres_url
from tests.test_offset_crash import check_exactly_once, clock, seeded

pytestmark = [pytest.mark.storage, pytest.mark.slow]
LOANS = 60


def outcomes(url: str) -> dict[str, tuple[Any, ...]]:
    ledger = Ledger(url, clock=clock())
    try:
        return {e.loan_no: (e.outcome, e.reason, str(e.amount_due), str(e.card_amount),
                            tuple((p["role"], str(p["amount"])) for p in e.parts))
                for e in ledger.iter_events(topics=[topic_of(Deduction, "Recorded")]) if e.deduction_on == RUN_DAY}
    finally:
        ledger.close()


def trial(url: str) -> dict[str, Any]:
    ledger = Ledger(url, clock=clock())
    try:
        return ledger.trial_balance().as_dict()
    finally:
        ledger.close()


def test_two_workers_deduct_what_one_does_exactly_once() -> None:
    postgres_reachable_or_fail()
    one, two = scratch_postgres_url(), scratch_postgres_url()
    try:
        for url in (one, two):
            seeded(url, LOANS)
        for url, workers in ((one, 1), (two, 2)):
            ledger = Ledger(url, clock=clock())
            try:
                result = ledger.run_offset(RUN_DAY, workers=workers)
                assert result["dates"][-1]["loans"] == LOANS
            finally:
                ledger.close()
        assert check_exactly_once(two, LOANS) == check_exactly_once(one, LOANS)
        assert outcomes(two) == outcomes(one)
        assert trial(two) == trial(one)
        again = Ledger(two, clock=clock())
        try:  # a re-run of the finished day with workers changes nothing
            assert again.run_offset_date(RUN_DAY, workers=2).already == LOANS
        finally:
            again.close()
    finally:
        drop_scratch(one)
        drop_scratch(two)


def test_sqlite_runs_one_worker_and_says_so(tmp_path: Any) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path}/one.sqlite3", clock=clock())
    try:
        with pytest.raises(WorkersError, match="sqlite store has one writer"):
            ledger.run_offset(RUN_DAY, workers=2)
        with pytest.raises(WorkersError, match=f"1..{WORKERS_MAX}"):
            ledger.run_offset(RUN_DAY, workers=WORKERS_MAX + 1)
    finally:
        ledger.close()
