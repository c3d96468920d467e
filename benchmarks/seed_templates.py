"""A household's stored rows as a template: built once per shape, filled in for every household of it.

``build_template`` lives one household of a shape through ``benchmarks.seed_household`` (the real
aggregate methods, and the jobs' command bodies in memory), then writes each event as the application
stores it (``app.mapper.to_stored_event``) and as a save's chaining hashes it (``ledger.audit_append``:
the canonical JSON of the event in memory, which ``audit verify`` recomputes from the stored state), and
takes each account's and loan's compact snapshot at its last version (``Snapshot.take``). Every value
that makes the household *who* it is — ids (hex in stored state, dashed in canonical JSON), resident ids,
names, account and loan numbers, the card, serials — is a *token*: the byte strings are cut at each
token, so filling them in for another household of the shape is one ``bytes % tuple`` per string.
Names and the birth date are matched with their JSON quotes; the others are long digit or hex strings
no amount, date or code can contain (and no event date reaches back to a birth date:
``HISTORY_YEARS_MAX``).

``fill`` gives a household's rows with their per-aggregate audit links (the global chain is the
writer's: it depends on positions). Serials are the only values shared between households: the
centre's daily sequence hands them out in write order, and ``SerialState`` writes its events.
"""

from __future__ import annotations

import json

import orjson

import copy
import re
from dataclasses import dataclass, field
from datetime import date
from hashlib import sha256
from operator import itemgetter
from typing import Any, Callable, Iterable
from uuid import UUID


from ledger.aggregates import fund_compact, loan_compact
from ledger.aggregates.base import recording
from ledger.aggregates.documents import CENTRE_SERIAL_SCOPE, DailySequence, Payout, SerialRef
from ledger.aggregates.fund_account import FundAccount
from ledger.aggregates.loan import Loan
from ledger.aggregates.offset import OffsetMandate
from ledger.aggregates.parties import Member
from ledger.audit import GENESIS_HASH, link
from ledger.audit_append import canonical_pair

from benchmarks.seed_household import (
    Household,
    Identity,
    MemoryJobs,
    SeedPlan,
    SequenceBook,
    recorded_at,
    timeline,
)

VERSION_KEY = b'"version":'
GENESIS = GENESIS_HASH.encode("ascii")
ID_ROLES = ("borrower", "spouse", "borrower_account", "spouse_account", "loan", "mandate")


@dataclass(frozen=True)
class Filler:
    """A byte string with holes: ``fmt % values`` (``fmt`` itself when it has none)."""

    fmt: bytes
    get: Callable[[tuple[bytes, ...]], tuple[bytes, ...]] | None

    def __call__(self, values: tuple[bytes, ...]) -> bytes:
        return self.fmt if self.get is None else self.fmt % self.get(values)


@dataclass(frozen=True)
class WrappedFiller:
    """A snapshot's stored state: its decision state is JSON text (``{"z": ...}``) inside the stored JSON,
    where the identity tokens are escaped; the text itself is filled, then wrapped as the mapper would."""

    inner: Filler
    before: bytes  # the stored JSON up to the text's opening quote, and from its closing quote on
    after: bytes

    def __call__(self, values: tuple[bytes, ...]) -> bytes:
        return self.before + orjson.dumps(self.inner(values).decode("utf-8")) + self.after


@dataclass(frozen=True)
class RowTemplate:
    """One stored event of the household: its aggregate (a token index), version, topic and strings."""

    role: str
    id_hex: int  # token index of the aggregate id, hex form
    id_text: int  # and dashed form
    version: int
    topic: str
    state: Filler
    canonical: Filler  # the chain's canonical document
    state_hash: Filler | str  # the canonical state (a constant hash when it holds no token)


@dataclass(frozen=True)
class SnapshotTemplate:
    id_hex: int
    version: int
    topic: str
    state: Filler


@dataclass
class Template:
    """A shape's rows, snapshots, serial days and payout roles (the tokens' layout)."""

    shape: int
    index: int  # the household lived to make it
    rows: list[RowTemplate]
    snapshots: list[SnapshotTemplate]
    serial_days: list[date]
    payout_roles: list[str]
    roles: list[str]
    hot: list[tuple[Any, ...]] = field(init=False)  # the rows as plain tuples, for fill's loop
    id_tokens: set[int] = field(init=False)  # the tokens that name an aggregate

    def __post_init__(self) -> None:
        self.hot = [(r.id_hex, r.id_text, r.version, r.topic, r.state, r.canonical, r.state_hash) for r in self.rows]
        self.id_tokens = {r.id_hex for r in self.rows} | {r.id_text for r in self.rows} | \
            {s.id_hex for s in self.snapshots}


# A stored event ready for the writer (a plain tuple: millions are made): the store's columns, and the
# chain's canonical document and links — (id hex, id dashed, version, topic, state, canonical, state hash,
# aggregate hash).
FilledRow = tuple[str, str, int, str, bytes, bytes, str, str]


# -- tokens ------------------------------------------------------------------------------------------
def tokens(plan: SeedPlan, index: int, roles: list[str], payout_roles: list[str], serials: list[str]) -> list[str]:
    """The household's identity values, in the order both a template and a filling use."""
    who = Identity.of(plan, index)
    accounts = {"borrower": who.borrower_account_no, "spouse": who.spouse_account_no}
    ids = {"borrower": Member.create_id(who.borrower_number), "spouse": Member.create_id(who.spouse_number),
           "borrower_account": FundAccount.create_id(accounts["borrower"]),
           "spouse_account": FundAccount.create_id(accounts["spouse"]),
           "loan": Loan.create_id(who.loan_no), "mandate": OffsetMandate.create_id(who.loan_no)}
    postings = {"wd:borrower": f"wd:seed:{accounts['borrower']}", "wd:spouse": f"wd:seed:{accounts['spouse']}",
                "loan": f"loan:{who.loan_no}"}
    values: list[str] = []
    for role in roles:
        values += [ids[role].hex, str(ids[role])]
    for role, serial in zip(payout_roles, serials):
        payout, ref = Payout.create_id(postings[role]), SerialRef.create_id(serial)
        values += [payout.hex, str(payout), ref.hex, str(ref), serial]
    spouse = "spouse" in roles
    values += [who.borrower_number, accounts["borrower"], who.loan_no, who.card, f'"{who.borrower_name}"',
               f'"{who.birth_date.isoformat()}"']
    if spouse:
        values += [who.spouse_number, accounts["spouse"], f'"{who.spouse_name}"']
    return values


def role_id_tokens(role: str, roles: list[str], payout_roles: list[str]) -> tuple[int, int]:
    """Token indices (hex, dashed) of the id of the aggregate playing ``role``."""
    if role in roles:
        position = 2 * roles.index(role)
    else:
        kind, _, payout_role = role.partition(":")
        position = 2 * len(roles) + 5 * payout_roles.index(payout_role) + (0 if kind == "payout" else 2)
    return position, position + 1


def compiler(values: list[str]) -> Callable[[bytes], Filler]:
    """Cuts byte strings at the template's tokens (longest first) into fillers."""
    encoded = [value.encode("utf-8") for value in values]
    assert len(set(encoded)) == len(encoded), "two identity values of one household are equal"
    index_of = {value: position for position, value in enumerate(encoded)}
    pattern = re.compile(b"|".join(re.escape(v) for v in sorted(encoded, key=len, reverse=True)))

    def compile_bytes(data: bytes) -> Filler:
        parts, holes, last = [], [], 0
        for match in pattern.finditer(data):
            parts += [data[last:match.start()].replace(b"%", b"%%"), b"%s"]
            holes.append(index_of[match.group()])
            last = match.end()
        if not holes:
            return Filler(data, None)
        parts.append(data[last:].replace(b"%", b"%%"))
        getter = itemgetter(*holes)
        get = getter if len(holes) > 1 else (lambda values, one=holes[0]: (values[one],))
        return Filler(b"".join(parts), get)

    return compile_bytes


# -- building --------------------------------------------------------------------------------------
def live(ledger: Any, plan: SeedPlan, index: int, employer_id: UUID) -> tuple[Household, SequenceBook]:
    """Household ``index`` lived through its timeline in memory (nothing is stored)."""
    serials = SequenceBook(None)
    household = Household(ledger, plan, index, employer_id, serials)
    jobs = MemoryJobs(ledger)
    for day, names, steps in timeline(plan, ledger.policy, household):
        with recording(recorded_at(day)):
            jobs.run(household, day, names)
            household.run(day, steps)
    return household, serials


def build_template(ledger: Any, plan: SeedPlan, index: int, employer_id: UUID, check: bool = False) -> Template:
    """Household ``index`` lived and written as its shape's template; ``check``: also replay each account
    and loan from its events and require the live aggregate's compact state to be the replay's."""
    household, serials = live(ledger, plan, index, employer_id)
    roles = [role for role in ID_ROLES if role in household.aggregates]
    payout_roles = [role.partition(":")[2] for role in household.aggregates if role.startswith("payout:")]
    serial_values = [serial for _day, serial in serials.taken]
    assert len(serial_values) == len(payout_roles), (serials.taken, payout_roles)
    compile_bytes = compiler(tokens(plan, index, roles, payout_roles, serial_values))
    events = []
    for rank, (role, aggregate) in enumerate(household.aggregates.items()):
        collected = aggregate.collect_events()
        if check:
            check_replay(aggregate, collected)
        events += [(event.timestamp, rank, event.originator_version, role, event) for event in collected]
    events.sort(key=lambda e: e[:3])
    transcoder = ledger.mapper.transcoder
    rows = [_row(ledger.mapper, transcoder, compile_bytes, role, event, roles, payout_roles)
            for _at, _rank, _version, role, event in events]
    snapshots = [_snapshot(ledger, compile_bytes, role, aggregate, roles, payout_roles)
                 for role, aggregate in household.aggregates.items() if isinstance(aggregate, (FundAccount, Loan))]
    return Template(plan.shape(index).number, index, rows, snapshots, [day for day, _serial in serials.taken],
                    payout_roles, roles)


def check_replay(aggregate: Any, events: list[Any]) -> None:
    """The compact state of the live aggregate is the one its events replayed give (what a store loads)."""
    if not isinstance(aggregate, (FundAccount, Loan)):
        return
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    module = fund_compact if isinstance(aggregate, FundAccount) else loan_compact
    live_state = module.encode(copy.deepcopy(aggregate))
    replayed_state = module.encode(replayed)
    if live_state != replayed_state:
        differing = sorted(k for k in live_state if live_state[k] != replayed_state.get(k))
        raise AssertionError(f"{type(aggregate).__name__} {aggregate.id}: the live aggregate's snapshot differs "
                             f"from its replay's in {differing}")


def _row(mapper: Any, transcoder: Any, compile_bytes: Callable[[bytes], Filler], role: str, event: Any,
         roles: list[str], payout_roles: list[str]) -> RowTemplate:
    stored = mapper.to_stored_event(event)
    document, state = canonical_pair(event, transcoder)
    assert document.endswith(VERSION_KEY + str(stored.originator_version).encode() + b"}"), document[-40:]
    hex_token, text_token = role_id_tokens(role, roles, payout_roles)
    state_filler = compile_bytes(state)
    state_hash = sha256(state_filler.fmt).hexdigest() if state_filler.get is None else state_filler
    return RowTemplate(role, hex_token, text_token, stored.originator_version, stored.topic,
                       compile_bytes(stored.state), compile_bytes(document), state_hash)


def _snapshot(ledger: Any, compile_bytes: Callable[[bytes], Filler], role: str, aggregate: Any, roles: list[str],
              payout_roles: list[str]) -> SnapshotTemplate:
    """The compact snapshot at the last version (``check_replay``: the one a replay of the events gives)."""
    snapshot = type(aggregate).Snapshot.take(aggregate)  # a loan's take folds it: the template is done with it
    marker = "\u0000GJJ-SNAPSHOT-TEXT\u0000"
    wrapped = ledger.mapper.to_stored_event(type(snapshot)(
        originator_id=snapshot.originator_id, originator_version=snapshot.originator_version,
        timestamp=snapshot.timestamp, topic=snapshot.topic, state={"z": marker}))
    before, _, after = wrapped.state.partition(json.dumps(marker).encode("ascii"))
    inner = compile_bytes(snapshot.state["z"].encode("utf-8"))
    return SnapshotTemplate(role_id_tokens(role, roles, payout_roles)[0], wrapped.originator_version, wrapped.topic,
                            WrappedFiller(inner, before, after))


# -- filling ---------------------------------------------------------------------------------------
@dataclass
class SerialState:
    """The centre's daily serial sequences (BNK-2) as this run extends them: numbers, versions, links."""

    ledger: Any
    days: dict[date, list[Any]] = field(default_factory=dict)  # day -> [version, last, aggregate hash, id]
    rows: dict[date, tuple[RowTemplate, RowTemplate]] = field(default_factory=dict)

    def preload(self, days: Iterable[date]) -> None:
        """Read the days' sequences from the store now (the writer then drops the chain index it uses)."""
        for day in days:
            if day not in self.days:
                self._load(day)

    def take(self, day: date, out: list[FilledRow]) -> str:
        state = self.days.get(day) or self._load(day)
        started, taken = self.rows[day]
        if state[0] == 0:
            out.append(self._fill(started, state, 1))
        state[1] += 1
        out.append(self._fill(taken, state, state[0] + 1))
        return f"{day:%Y%m%d}{state[1]:07d}"

    def _fill(self, row: RowTemplate, state: list[Any], version: int) -> FilledRow:
        document = row.canonical.fmt % (str(version).encode(),)
        aggregate_hash = link(state[2], document)
        state[0], state[2] = version, aggregate_hash
        assert isinstance(row.state_hash, str)
        return (state[3].hex, str(state[3]), version, row.topic, row.state.fmt, document, row.state_hash,
                aggregate_hash)

    def _load(self, day: date) -> list[Any]:
        """The day's sequence as stored (version, last serial, its last chain link), and its rows."""
        sequence_id = DailySequence.create_id(CENTRE_SERIAL_SCOPE, day)
        stored = self.ledger.find(sequence_id)
        state = [0, 0, GENESIS_HASH, sequence_id]
        if stored is not None:
            head = self.ledger.audit.head()
            links = self.ledger.audit.previous_aggregate_hashes([str(sequence_id)], before=head.position + 1)
            state = [stored.version, stored.last, links[str(sequence_id)], sequence_id]
        self.days[day] = state
        self.rows[day] = self._templates(day)
        return state

    def _templates(self, day: date) -> tuple[RowTemplate, RowTemplate]:
        """Started and Taken of the day's sequence; the canonical document's version is a hole."""
        mapper = self.ledger.mapper
        with recording(recorded_at(day)):
            sequence = DailySequence(scope=CENTRE_SERIAL_SCOPE, day=day)
            sequence.take(1)
        made = []
        for event in sequence.collect_events():
            stored = mapper.to_stored_event(event)
            document, state = canonical_pair(event, mapper.transcoder)
            cut = document.rindex(VERSION_KEY) + len(VERSION_KEY)
            assert document[cut:] == str(stored.originator_version).encode() + b"}", document[-40:]
            made.append(RowTemplate("sequence", -1, -1, 0, stored.topic, Filler(stored.state, None),
                                    Filler(document[:cut].replace(b"%", b"%%") + b"%s}", None),
                                    sha256(state).hexdigest()))
        return made[0], made[1]


def fill(template: Template, plan: SeedPlan, index: int, serials: list[str]) -> tuple[list[FilledRow], list[Any]]:
    """Household ``index``'s rows and snapshot rows, given the serials it takes (``SerialState.take``)."""
    values = tuple(v.encode("utf-8") for v in tokens(plan, index, template.roles, template.payout_roles, serials))
    texts = {i: values[i].decode() for i in template.id_tokens}
    links: dict[int, bytes] = {}
    rows = []
    for id_hex, id_text, version, topic, state, canonical, state_hash in template.hot:
        document = canonical.fmt % canonical.get(values)  # a document always holds its aggregate's id
        if state_hash.__class__ is not str:
            state_hash = sha256(state_hash.fmt % state_hash.get(values)).hexdigest()
        aggregate_hash = sha256(links.get(id_hex, GENESIS) + document).hexdigest()  # ledger.audit.link
        links[id_hex] = aggregate_hash.encode("ascii")
        rows.append((texts[id_hex], texts[id_text], version, topic,
                     state.fmt if state.get is None else state.fmt % state.get(values), document, state_hash,
                     aggregate_hash))
    snapshots = [(texts[s.id_hex], s.version, s.topic, s.state(values)) for s in template.snapshots]
    return rows, snapshots
