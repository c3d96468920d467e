"""The orjson decoder gives exactly what eventsourcing's JSONTranscoder gives, for every stored event."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.persistence import JSONTranscoder

from ledger.transcoding import FastJSONTranscoder

pytestmark = pytest.mark.storage


def both(ledger: Any) -> tuple[FastJSONTranscoder, JSONTranscoder]:
    plain = JSONTranscoder()
    ledger.register_transcodings(plain)
    fast = ledger.mapper.transcoder
    assert isinstance(fast, FastJSONTranscoder)
    return fast, plain


def test_every_stored_event_and_snapshot_decodes_as_the_stdlib_decoder_does(fund: Any) -> None:
    employer = fund.employer(ratio="12", from_period="2024-01")
    people = [fund.member(employer, from_period="2024-01") for _ in range(3)]
    for month in ("2024-04", "2024-05", "2024-06"):
        fund.remit(employer, month, [account for _, account in people])
    fund.withdraw(people[0][1], "100.00")
    account = fund.ledger.account(people[0][1])
    fund.ledger.take_snapshot(account.id)
    fast, plain = both(fund.ledger)
    states = [n.state for n in fund.ledger.recorder.select_notifications(start=1, limit=10_000)]
    states += [s.state for s in fund.ledger.snapshots.recorder.select_events(account.id)]
    assert len(states) > 20
    for state in states:
        assert fast.decode(state) == plain.decode(state)


@pytest.mark.parametrize("raw", [
    b'{"a":{"_type_":"money","_data_":"12.30"},"b":[{"_type_":"date_iso","_data_":"2025-01-15"}]}',
    b'{"n":123456789012345678901234567890}',          # beyond 64 bits: orjson would give a float
    b'{"x":NaN}',                                       # orjson refuses; the stdlib reads it
    b'{"_type_":"decimal_str","_data_":"1.25"}',
    b'{"k":{"_type_":"money","_data_":"1.00","extra":1}}',  # not a typed object: three keys
    b'[{"_type_":"uuid_hex","_data_":"5d29c0ee50b55cb982e5a1fea8043689"}]',
])
def test_edge_cases_decode_as_the_stdlib_decoder_does(fund: Any, raw: bytes) -> None:
    fast, plain = both(fund.ledger)
    got, want = fast.decode(raw), plain.decode(raw)
    if raw == b'{"x":NaN}':
        assert str(got) == str(want)  # NaN != NaN
    else:
        assert got == want and type(got) is type(want)
    if raw.startswith(b'{"n"'):
        assert got["n"] == 123456789012345678901234567890 and not isinstance(got["n"], (float, Decimal))
