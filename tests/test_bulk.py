"""``ledger.bulk.load_many``: many aggregates in a few statements, each exactly what ``repository.get`` gives.

It reads each aggregate's latest snapshot only and the events after it only; checked against the
repository for aggregates with several snapshots and events after the last, with none, and for ids
with no events at all, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from ledger.aggregates.fund_account import FundAccount
from ledger.bulk import _select, load_many

pytestmark = pytest.mark.storage


def test_load_many_gives_what_the_repository_gives(fund: Any) -> None:
    fund.ledger.snapshotting_intervals = {}  # snapshots only where the test takes them
    fund.on(date(2024, 6, 3))
    employer = fund.employer(from_period="2024-01")
    accounts = [fund.member(employer, from_period="2024-01")[1] for _ in range(3)]
    ledger = fund.ledger
    ids = [FundAccount.create_id(account) for account in accounts]
    taken = []
    for month in range(1, 6):
        fund.on(date(2024, month + 5, 8))
        fund.remit(employer, f"2024-{month:02d}", accounts[:2])
        if month in (2, 4):
            ledger.take_snapshot(ids[0])  # several snapshots, then events after the last
            taken.append(ledger.repository.get(ids[0]).version)
    assert len(_select(ledger.snapshots.recorder, ids)) == 2
    snapshots = _select(ledger.snapshots.recorder, ids, latest=True)
    assert [(s.originator_id, s.originator_version) for s in snapshots] == [(ids[0], taken[-1])]
    assert ledger.repository.get(ids[0]).version > taken[-1]  # the month-5 remittance came after it
    after = _select(ledger.recorder, ids, after={ids[0]: snapshots[0].originator_version})
    assert {s.originator_id for s in after} == set(ids)
    assert all(s.originator_version > snapshots[0].originator_version for s in after if s.originator_id == ids[0])
    missing = uuid.uuid4()
    loaded = load_many(ledger, [*ids, missing, ids[1]])
    assert set(loaded) == set(ids)  # an id with no events is absent; a repeated one counts once
    for aggregate_id in ids:
        expected = ledger.repository.get(aggregate_id)
        assert loaded[aggregate_id].version == expected.version
        assert vars(loaded[aggregate_id]) == vars(expected)
    assert loaded[ids[0]].balance == loaded[ids[1]].balance > loaded[ids[2]].balance
