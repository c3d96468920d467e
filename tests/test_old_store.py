"""Old stores still open (issue 14, item 8): a store written by the release before decision state.

``tests/data/store-df8cbc8.sqlite3.gz`` is the event store (events, snapshots of the old, whole-history
shape, audit chain and anchors) that ``run_demo(members=24, months=20)`` wrote with release df8cbc8; its
``.expected.json`` holds every account's balance and every active loan's position as that release read
them. Today's code opens it: the old snapshots (no seal, the old shape) are not believed and each
aggregate is replayed from its events to the same figures; ``audit verify`` accepts the events and the
chain and names the old snapshots until ``gjj audit reseal`` replaces them; then the store takes new
business, its read models build, and every check passes.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock
from ledger.audit import SNAPSHOT
from ledger.money import Money
from ledger.projections import Projector, ReadModel

DATA = Path(__file__).parent / "data"
STORE = DATA / "store-df8cbc8.sqlite3.gz"
EXPECTED = json.loads((DATA / "store-df8cbc8.expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def old_store(tmp_path: Path) -> str:
    target = tmp_path / "old.sqlite3"
    with gzip.open(STORE, "rb") as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
    return f"sqlite:///{target}"


def test_a_store_of_the_previous_release_reads_the_same_and_takes_new_business(old_store: str) -> None:
    last_loan_day = max(date.fromisoformat(loan["on"]) for loan in EXPECTED["loans"].values())
    clock = FixedClock(datetime(last_loan_day.year, last_loan_day.month, last_loan_day.day, 18, tzinfo=CHINA_TZ))
    ledger = Ledger(old_store, clock=clock)
    try:
        loaded = ledger.load_many(ledger.account_ids())
        assert {a.account_no: {"balance": str(a.balance), "state": a.state, "version": a.version}
                for a in loaded.values()} == EXPECTED["accounts"]
        for loan_no, expected in EXPECTED["loans"].items():
            loan = ledger.loan(loan_no)
            status = loan.book.status(date.fromisoformat(expected["on"]))
            assert (loan.state, str(status.outstanding_principal), str(status.amount_due), loan.version) == \
                (expected["state"], expected["outstanding"], expected["amount_due"], expected["version"])
        trial = ledger.trial_balance().as_dict()
        assert (trial["debit_side_total"], trial["credit_side_total"]) == \
            (EXPECTED["trial_balance"]["debit"], EXPECTED["trial_balance"]["credit"])

        report = ledger.audit.verify()
        kinds = {p.kind for p in report.problems}
        assert kinds <= {SNAPSHOT}, report.problems[:3]  # the events and the chain are intact
        resealed = ledger.reseal_snapshots()
        assert resealed["aggregates_resealed"] >= 1
        assert ledger.audit.verify().ok

        account_no = next(no for no, a in EXPECTED["accounts"].items() if a["state"] == "NORMAL"
                          and Money(a["balance"]) > Money("100.00"))
        fresh = Ledger(old_store, clock=clock)
        try:  # another process: the sealed snapshots are believed, the figures unchanged
            assert fresh.account(account_no).balance == Money(EXPECTED["accounts"][account_no]["balance"])
            assert fresh.snapshots_rejected == 0
            result = fresh.withdraw(account_no, "other", "100.00", clock.now().date(), {"purpose": "升级后"},
                                    idempotency_key="after-upgrade")
            assert Money(result["balance"]) == Money(EXPECTED["accounts"][account_no]["balance"]) - Money("100.00")
            assert fresh.check_books()["ok"] and fresh.audit.verify().ok
            projector = Projector.for_ledger(fresh)
            try:  # the read models build from the old events too, and agree with the ledger
                projector.catch_up()
                assert ReadModel(projector.engine).balance(account_no) == fresh.account(account_no).balance
            finally:
                projector.close()
        finally:
            fresh.close()
    finally:
        ledger.close()
