"""Handlers for employers (缴存单位), members (缴存职工) and fund accounts (个人账户).

Each handler mirrors what the aggregate's ``@event`` method does to its own state, into
read rows: ``rm_accounts`` (state, national export code, balance), ``rm_account_lines``
(one row per posting: value date, recorded time, kind in Chinese, signed fen amount,
reversal marks COR-1, reason 06 and loan number for offsets OFF-5), ``rm_account_states``
(state history for "state as of D"), ``rm_members`` and ``rm_employers``. A reversal line
copies the kind and period of the posting it mirrors so that a statement and a
certificate can net it without another lookup.
"""

from __future__ import annotations

import json
from typing import Any

from ledger.aggregates.fund_account import (
    CLOSE_CODES,
    CLOSED,
    FROZEN_CODE,
    KIND_NAMES_ZH,
    NORMAL,
    SEALED,
    STATE_CODES,
    FundAccount,
)
from ledger.aggregates.parties import Employer, Member
from ledger.money import Money
from ledger.projections import tables
from ledger.projections.batch import Batch, dump_json, fen
from ledger.projections.registry import REGISTRY, EventMeta, ProjectionError

OFFSET_REASON_CODE = "06"
REVERSAL_ZH = "冲正"
EVIDENCE_REFERENCES = ("contract_number", "certificate_number", "permit_number")

REGISTRY.entity("employers", tables.employers, "employer_id")
REGISTRY.entity("members", tables.members, "member_id")
REGISTRY.entity("accounts", tables.accounts, "account_id")

OWN_ACCOUNT = (("@id", "accounts"),)
OWN_MEMBER = (("@id", "members"),)
OWN_EMPLOYER = (("@id", "employers"),)


# -- employers ---------------------------------------------------------------------------
@REGISTRY.handles(Employer, "Opened", prefetch=OWN_EMPLOYER)
def employer_opened(batch: Batch, event: Any, meta: EventMeta) -> None:
    batch.put("employers", {
        "employer_id": meta.aggregate_id, "credit_code": event.credit_code, "name": event.name,
        "bank_account": event.bank_account, "state": "01", "opened_on": event.opened_on,
        "ratios_json": "[]", "deferrals_json": "[]", "version": meta.version,
    })


@REGISTRY.handles(Employer, "RatiosSet", "Deferred", "StateChanged", prefetch=OWN_EMPLOYER)
def employer_changed(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("employers", meta.aggregate_id, meta.position)
    if meta.event_name == "RatiosSet":
        ratios = [r for r in json.loads(row["ratios_json"]) if r[0] != event.from_period]
        ratios.append([event.from_period, str(event.employer_ratio), str(event.employee_ratio)])
        row["ratios_json"] = dump_json(sorted(ratios))
    elif meta.event_name == "Deferred":
        deferrals = json.loads(row["deferrals_json"])
        deferrals.append({"first": event.first_period, "last": event.last_period,
                          "deadline": event.deadline.isoformat()})
        row["deferrals_json"] = dump_json(deferrals)
    else:
        row["state"] = event.state
    row["version"] = meta.version
    batch.put("employers", row)


# -- members -------------------------------------------------------------------------------
@REGISTRY.handles(Member, "Registered", prefetch=OWN_MEMBER)
def member_registered(batch: Batch, event: Any, meta: EventMeta) -> None:
    batch.put("members", {
        "member_id": meta.aggregate_id, "id_number": event.id_number, "name": event.name,
        "birth_date": event.birth_date, "sex": event.sex, "employer_id": str(event.employer_id),
        "account_no": event.account_no, "spouse_id": None, "card_bank": None, "loans_used": 0,
        "loan_marks_json": "[]", "fraud_records_json": "[]", "version": meta.version,
    })


@REGISTRY.handles(Member, "EmployerChanged", "SpouseLinked", "SpouseUnlinked", "CardSet", "LoanMarked",
                  "FraudRecorded", prefetch=OWN_MEMBER)
def member_changed(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("members", meta.aggregate_id, meta.position)
    name = meta.event_name
    if name == "EmployerChanged":
        row["employer_id"] = str(event.employer_id)
    elif name == "SpouseLinked":
        row["spouse_id"] = str(event.spouse_id)
    elif name == "SpouseUnlinked":
        row["spouse_id"] = None
    elif name == "CardSet":
        row["card_bank"] = event.card.get("bank")
    elif name == "LoanMarked":
        _mark_loan(row, event, meta)
    else:
        records = json.loads(row["fraud_records_json"])
        records.append([event.value_date.isoformat(), event.reference])
        row["fraud_records_json"] = dump_json(records)
    row["version"] = meta.version
    batch.put("members", row)


def _mark_loan(row: dict[str, Any], event: Any, meta: EventMeta) -> None:
    """Mirror ``Member.mark_loan``: loans used counts each move to 'outstanding'."""
    marks = json.loads(row["loan_marks_json"])
    current = {loan: mark for _at, loan, mark in marks}
    if event.mark == "outstanding" and current.get(event.loan_id) != "outstanding":
        row["loans_used"] += 1
    marks.append([meta.recorded_at_utc.isoformat(), event.loan_id, event.mark])
    row["loan_marks_json"] = dump_json(marks)


# -- fund accounts: states ---------------------------------------------------------------------
def export_code(row: dict[str, Any]) -> str:
    """ACC-1 national code; a frozen account exports as 06 whatever its state."""
    if row["is_frozen"]:
        return FROZEN_CODE
    if row["state"] == CLOSED:
        return CLOSE_CODES.get(row["close_reason"] or "withdrawal", "05")
    return STATE_CODES[row["state"]]


def _record_state(batch: Batch, row: dict[str, Any], meta: EventMeta, value_date: Any) -> None:
    row["is_frozen"] = bool(json.loads(row["freezes_json"]))
    row["export_code"] = export_code(row)
    batch.append(tables.account_states, {
        "position": meta.position, "account_no": row["account_no"], "value_date": value_date,
        "recorded_at_utc": meta.recorded_at_utc, "event": meta.event_name, "state": row["state"],
        "export_code": row["export_code"],
    })


@REGISTRY.handles(FundAccount, "Opened", prefetch=(("@id", "accounts"), ("member_id", "members")))
def account_opened(batch: Batch, event: Any, meta: EventMeta) -> None:
    member = batch.require("members", str(event.member_id), meta.position)
    row = {
        "account_id": meta.aggregate_id, "account_no": event.account_no, "member_id": str(event.member_id),
        "member_name": member["name"], "id_number": member["id_number"], "employer_id": str(event.employer_id),
        "state": NORMAL, "export_code": STATE_CODES[NORMAL], "is_frozen": False, "close_reason": None,
        "opened_on": event.opened_on, "sealed_on": None, "closed_on": None, "agreement": None,
        "balance_fen": 0, "bases_json": "[]", "freezes_json": "{}", "version": meta.version,
    }
    _record_state(batch, row, meta, event.opened_on)
    batch.put("accounts", row)


@REGISTRY.handles(FundAccount, "Sealed", "Unsealed", "Reopened", "Closed", "Frozen", "Unfrozen",
                  prefetch=OWN_ACCOUNT)
def account_state_changed(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    name = meta.event_name
    if name in ("Sealed", "Reopened"):
        row.update(state=SEALED, sealed_on=event.value_date)
        if name == "Reopened":
            row.update(close_reason=None, closed_on=None)
    elif name == "Unsealed":
        row.update(state=NORMAL, sealed_on=None, employer_id=str(event.employer_id))
    elif name == "Closed":
        row.update(state=CLOSED, close_reason=event.reason, closed_on=event.value_date)
    else:
        _change_freezes(row, event, name)
    row["version"] = meta.version
    _record_state(batch, row, meta, event.value_date)
    batch.put("accounts", row)


def _change_freezes(row: dict[str, Any], event: Any, name: str) -> None:
    freezes = json.loads(row["freezes_json"])
    if name == "Frozen":
        amount = None if event.amount is None else str(event.amount)
        freezes[event.freeze_id] = {"authority": event.authority, "document": event.document, "amount": amount,
                                    "from": event.value_date.isoformat(),
                                    "until": event.until.isoformat() if event.until else None}
    else:
        freezes.pop(event.freeze_id, None)
    row["freezes_json"] = dump_json(freezes)


@REGISTRY.handles(FundAccount, "BaseSet", "AgreementSet", prefetch=OWN_ACCOUNT)
def account_terms_changed(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    if meta.event_name == "BaseSet":
        bases = [b for b in json.loads(row["bases_json"]) if b[0] != event.from_period]
        bases.append([event.from_period, str(event.base)])
        row["bases_json"] = dump_json(sorted(bases))
    else:
        row["agreement"] = event.agreement
    row["version"] = meta.version
    batch.put("accounts", row)


# -- fund accounts: postings --------------------------------------------------------------------
def post_line(batch: Batch, row: dict[str, Any], meta: EventMeta, line_no: int, **line: Any) -> dict[str, Any]:
    """Append one posting (``amount`` Money or ``amount_fen``) to the account's lines and move its balance."""
    amount_fen = line["amount_fen"] if "amount_fen" in line else fen(line["amount"])
    record = {
        "position": meta.position, "line_no": line_no, "account_no": row["account_no"],
        "value_date": line["value_date"], "recorded_at_utc": meta.recorded_at_utc, "kind": line["kind"],
        "kind_zh": REVERSAL_ZH if line["kind"] == "reversal" else KIND_NAMES_ZH.get(line["kind"], line["kind"]),
        "amount_fen": amount_fen, "posting_id": line["posting_id"],
        "original_posting_id": line.get("original_posting_id"), "is_reversal": line["kind"] == "reversal",
        "reverses_kind": line.get("reverses_kind"), "period": line.get("period"),
        "reason_code": line.get("reason_code", ""), "reference": line.get("reference", "")[:200],
    }
    row["balance_fen"] += record["amount_fen"]
    batch.append(tables.account_lines, record)
    return record


@REGISTRY.handles(FundAccount, "Contributed", prefetch=OWN_ACCOUNT)
def contributed(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    post_line(batch, row, meta, 1, value_date=event.value_date, kind=event.kind,
              amount_fen=fen(event.employer_amount) + fen(event.employee_amount), posting_id=event.posting_id,
              period=event.period, reference=f"{event.period} {event.document_key}")
    row["version"] = meta.version
    batch.put("accounts", row)


@REGISTRY.handles(FundAccount, "Withdrawn", prefetch=OWN_ACCOUNT)
def withdrawn(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    evidence = event.evidence or {}
    reference = next((str(evidence[k]) for k in EVIDENCE_REFERENCES if evidence.get(k)), event.kind)
    post_line(batch, row, meta, 1, value_date=event.value_date, kind="withdrawal", amount=-event.amount,
              posting_id=event.posting_id, reason_code=event.code, reference=reference)
    if event.closing:
        row.update(state=CLOSED, close_reason="withdrawal", closed_on=event.value_date)
        _record_state(batch, row, meta, event.value_date)
    row["version"] = meta.version
    batch.put("accounts", row)


@REGISTRY.handles(FundAccount, "CourtDeducted", prefetch=OWN_ACCOUNT)
def court_deducted(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    post_line(batch, row, meta, 1, value_date=event.value_date, kind="court-deduction", amount=-event.amount,
              posting_id=event.posting_id, reference=event.document)
    freezes = json.loads(row["freezes_json"])
    for freeze in freezes.values():  # mirrors FundAccount._court_deducted
        if freeze["authority"] == "court" and freeze["amount"] is not None:
            freeze["amount"] = str((Money(freeze["amount"]) - event.amount).max(Money(0)))
    row["freezes_json"] = dump_json(freezes)
    row["version"] = meta.version
    batch.put("accounts", row)


@REGISTRY.handles(FundAccount, "DebitedForLoan", prefetch=OWN_ACCOUNT)
def debited_for_loan(batch: Batch, event: Any, meta: EventMeta) -> None:
    """OFF-5: a withdrawal with reason 06 marked with the loan number."""
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    post_line(batch, row, meta, 1, value_date=event.value_date, kind=event.kind, amount=-event.amount,
              posting_id=event.posting_id, reason_code=OFFSET_REASON_CODE, reference=event.loan_no)
    row["version"] = meta.version
    batch.put("accounts", row)


@REGISTRY.handles(FundAccount, "CreditedBack", prefetch=OWN_ACCOUNT)
def credited_back(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    original = batch.find_line(row["account_no"], event.original_posting_id)
    post_line(batch, row, meta, 1, value_date=event.value_date, kind=event.reason, amount=event.amount,
              posting_id=event.posting_id, original_posting_id=event.original_posting_id,
              reason_code=original["reason_code"] if original else "", reference=event.original_posting_id)
    row["version"] = meta.version
    batch.put("accounts", row)


@REGISTRY.handles(FundAccount, "InterestSettled", prefetch=OWN_ACCOUNT)
def interest_settled(batch: Batch, event: Any, meta: EventMeta) -> None:
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    if not event.interest.is_zero:
        post_line(batch, row, meta, 1, value_date=event.value_date, kind="interest", amount=event.interest,
                  posting_id=event.posting_id, reference=f"{event.start.isoformat()}~{event.end.isoformat()}")
    row["version"] = meta.version
    batch.put("accounts", row)


@REGISTRY.handles(FundAccount, "Reversed", prefetch=OWN_ACCOUNT)
def reversed_(batch: Batch, event: Any, meta: EventMeta) -> None:
    """COR-1: the mirror line marked 冲正; COR-3: the interest adjustment on the correction day."""
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    original = batch.find_line(row["account_no"], event.posting_id)
    if original is None:
        raise ProjectionError(f"reversal of unknown posting {event.posting_id}", meta.position)
    post_line(batch, row, meta, 1, value_date=event.value_date, kind="reversal", amount=event.amount,
              posting_id=event.reversal_id, original_posting_id=event.posting_id,
              reverses_kind=original["kind"], period=original["period"], reason_code=original["reason_code"],
              reference=event.reason)
    if not event.interest_adjustment.is_zero:
        post_line(batch, row, meta, 2, value_date=event.correction_date, kind="interest-adjustment",
                  amount=event.interest_adjustment, posting_id=event.reversal_id + ":interest",
                  original_posting_id=event.posting_id, reference=event.reason)
    row["version"] = meta.version
    batch.put("accounts", row)



@REGISTRY.handles(FundAccount, "InterestAdjusted", prefetch=OWN_ACCOUNT)
def interest_adjusted(batch: Batch, event: Any, meta: EventMeta) -> None:
    """COR-3 for a posting value-dated into a settled interest year, on the correction day."""
    row = batch.require("accounts", meta.aggregate_id, meta.position)
    post_line(batch, row, meta, 1, value_date=event.value_date, kind="interest-adjustment", amount=event.amount,
              posting_id=event.posting_id, original_posting_id=event.original, reference=event.original)
    row["version"] = meta.version
    batch.put("accounts", row)


# -- the rebuild's fast path for the most frequent event (ADR 0008) ----------------------------------
CONTRIBUTED_KEYS = frozenset(("timestamp", "period", "kind", "employer_amount", "employee_amount", "value_date",
                              "document_key", "posting_id", "journal"))
LINE_COLUMNS = ("position", "line_no", "account_no", "value_date", "recorded_at_utc", "kind", "kind_zh",
                "amount_fen", "posting_id", "original_posting_id", "is_reversal", "reverses_kind", "period",
                "reason_code", "reference")
assert tuple(tables.account_lines.c.keys()) == LINE_COLUMNS, "update contributed_fast with rm_account_lines"


def contributed_parse(fast: Any, state: dict[str, Any]) -> tuple[Any, ...] | None:
    """What ``contributed_fast`` reads from a contribution's stored JSON, checked and in the driver's form:
    (kind, period, posting id, document key, value date, recorded time, amount in fen, journal lines as
    (account, side, fen)); None for any other stored shape (a key more or less, a value of another type).

    Needs nothing but the JSON and ``fast``'s conversions: a rebuild may run it in a second process
    (``ledger.projections.rebuild.Preparser``) and hand the result to ``contributed_write``.
    """
    if len(state) != len(CONTRIBUTED_KEYS):
        return None
    try:  # these nine keys and no other
        kind, period, posting_id, document_key = (state["kind"], state["period"], state["posting_id"],
                                                  state["document_key"])
        value_date, recorded = fast.date(state["value_date"]), fast.recorded(state["timestamp"])
        employer_fen, employee_fen = fast.fen(state["employer_amount"]), fast.fen(state["employee_amount"])
        journal = fast.journal_lines(state["journal"])
    except KeyError:
        return None
    if not (type(kind) is str and type(period) is str and type(posting_id) is str and type(document_key) is str):
        return None
    if value_date is None or recorded is None or employer_fen is None or employee_fen is None or journal is None:
        return None
    return kind, period, posting_id, document_key, value_date, recorded, employer_fen + employee_fen, journal


def contributed_write(batch: Batch, fast: Any, position: int, aggregate_id: str, version: int,
                      parsed: tuple[Any, ...]) -> bool:
    """The rows ``contributed`` and ``project_journal`` write, from ``contributed_parse``'s result."""
    kind, period, posting_id, document_key, value_date, recorded, amount_fen, journal = parsed
    row = batch.rows["accounts"].get(aggregate_id) or batch.require("accounts", aggregate_id, position)
    is_reversal = kind == "reversal"
    account_no = row["account_no"]
    line = (position, 1, account_no, value_date, recorded, kind,
            REVERSAL_ZH if is_reversal else KIND_NAMES_ZH.get(kind, kind), amount_fen, posting_id, None,
            fast.flag(is_reversal), None, period, "", f"{period} {document_key}"[:200])
    row["balance_fen"] += amount_fen
    processed = batch.processed
    processed[tables.account_lines].append(line)
    batch.lines_by_posting[(account_no, posting_id)] = line
    if journal:
        processed[tables.journal_lines].extend(
            [(position, 1, line_no, value_date, recorded, account, side, line_fen, "FundAccount", aggregate_id,
              version, "Contributed") for line_no, (account, side, line_fen) in enumerate(journal, start=1)])
    row["version"] = version
    batch.changed["accounts"].add(aggregate_id)  # batch.put: the row is the cached one
    return True


@REGISTRY.fast_path(FundAccount, "Contributed", replaces=(contributed,), parse=contributed_parse,
                    write=contributed_write)
def contributed_fast(batch: Batch, fast: Any, position: int, aggregate_id: str, version: int,
                     state: dict[str, Any]) -> bool:
    """``contributed`` and its journal lines from the stored JSON: the same rows, no event object.

    Any other stored shape (a key more or less, a value of another type) returns False and
    the event goes through ``contributed`` itself.
    """
    parsed = contributed_parse(fast, state)
    return parsed is not None and contributed_write(batch, fast, position, aggregate_id, version, parsed)


# -- the rebuild's fast paths for the other frequent events (same rows as the handlers, ADR 0008) -------
STATE_COLUMNS = ("position", "account_no", "value_date", "recorded_at_utc", "event", "state", "export_code")
assert tuple(tables.account_states.c.keys()) == STATE_COLUMNS, "update account_opened_fast with rm_account_states"
REGISTERED_KEYS = frozenset(("timestamp", "originator_topic", "id_number", "name", "birth_date", "sex",
                             "employer_id", "account_no", "registered_on"))
OPENED_KEYS = frozenset(("timestamp", "originator_topic", "account_no", "member_id", "employer_id", "opened_on"))
BASE_SET_KEYS = frozenset(("timestamp", "from_period", "base", "floor", "cap"))
INTEREST_KEYS = frozenset(("timestamp", "year", "start", "end", "product", "interest", "method", "rates",
                           "value_date", "posting_id", "closing", "journal"))


@REGISTRY.fast_path(Member, "Registered", replaces=(member_registered,))
def member_registered_fast(batch: Batch, fast: Any, position: int, aggregate_id: str, version: int,
                           state: dict[str, Any]) -> bool:
    """``member_registered`` from the stored JSON (no journal: the event carries none)."""
    if state.keys() != REGISTERED_KEYS:
        return False
    id_number, name, sex, account_no = state["id_number"], state["name"], state["sex"], state["account_no"]
    birth_date, employer_id = fast.value(state["birth_date"], "date_iso"), fast.value(state["employer_id"], "uuid_hex")
    if not (type(id_number) is str and type(name) is str and type(sex) is str and type(account_no) is str):
        return False
    if birth_date is None or employer_id is None or fast.recorded(state["timestamp"]) is None:
        return False
    batch.put("members", {
        "member_id": aggregate_id, "id_number": id_number, "name": name, "birth_date": birth_date, "sex": sex,
        "employer_id": str(employer_id), "account_no": account_no, "spouse_id": None, "card_bank": None,
        "loans_used": 0, "loan_marks_json": "[]", "fraud_records_json": "[]", "version": version,
    })
    return True


@REGISTRY.fast_path(FundAccount, "Opened", replaces=(account_opened,))
def account_opened_fast(batch: Batch, fast: Any, position: int, aggregate_id: str, version: int,
                        state: dict[str, Any]) -> bool:
    """``account_opened`` (the account row and its first state row) from the stored JSON."""
    if state.keys() != OPENED_KEYS:
        return False
    account_no = state["account_no"]
    member_id, employer_id = fast.value(state["member_id"], "uuid_hex"), fast.value(state["employer_id"], "uuid_hex")
    opened_on, recorded = fast.value(state["opened_on"], "date_iso"), fast.recorded(state["timestamp"])
    value_date = fast.date(state["opened_on"])
    if type(account_no) is not str or member_id is None or employer_id is None or opened_on is None \
            or recorded is None or value_date is None:
        return False
    member = batch.require("members", str(member_id), position)
    row = {
        "account_id": aggregate_id, "account_no": account_no, "member_id": str(member_id),
        "member_name": member["name"], "id_number": member["id_number"], "employer_id": str(employer_id),
        "state": NORMAL, "export_code": STATE_CODES[NORMAL], "is_frozen": False, "close_reason": None,
        "opened_on": opened_on, "sealed_on": None, "closed_on": None, "agreement": None,
        "balance_fen": 0, "bases_json": "[]", "freezes_json": "{}", "version": version,
    }
    batch.processed[tables.account_states].append(
        (position, account_no, value_date, recorded, "Opened", NORMAL, row["export_code"]))  # _record_state
    batch.put("accounts", row)
    return True


@REGISTRY.fast_path(FundAccount, "BaseSet", replaces=(account_terms_changed,))
def base_set_fast(batch: Batch, fast: Any, position: int, aggregate_id: str, version: int,
                  state: dict[str, Any]) -> bool:
    """``account_terms_changed`` for a BaseSet from the stored JSON."""
    if state.keys() != BASE_SET_KEYS:
        return False
    from_period, base = state["from_period"], fast.value(state["base"], "money")
    if type(from_period) is not str or base is None or fast.recorded(state["timestamp"]) is None \
            or fast.fen(state["floor"]) is None or fast.fen(state["cap"]) is None:
        return False
    row = batch.require("accounts", aggregate_id, position)
    bases = [b for b in json.loads(row["bases_json"]) if b[0] != from_period]
    bases.append([from_period, str(base)])
    row["bases_json"] = dump_json(sorted(bases))
    row["version"] = version
    batch.put("accounts", row)
    return True


@REGISTRY.fast_path(FundAccount, "InterestSettled", replaces=(interest_settled,))
def interest_settled_fast(batch: Batch, fast: Any, position: int, aggregate_id: str, version: int,
                          state: dict[str, Any]) -> bool:
    """``interest_settled`` and its journal lines from the stored JSON."""
    if state.keys() != INTEREST_KEYS:
        return False
    posting_id, rates = state["posting_id"], state["rates"]
    start, end = fast.value(state["start"], "date_iso"), fast.value(state["end"], "date_iso")
    value_date, recorded = fast.date(state["value_date"]), fast.recorded(state["timestamp"])
    interest_fen = fast.fen(state["interest"])
    if type(posting_id) is not str or type(rates) is not list or start is None or end is None \
            or value_date is None or recorded is None or interest_fen is None:
        return False
    if type(state["year"]) is not str or type(state["method"]) is not str or type(state["closing"]) is not bool \
            or fast.value(state["product"], "decimal_str") is None:
        return False  # attributes the handler does not read, but which the mapper would have to decode
    journal = fast.journal_rows(state["journal"], position, 1, value_date, recorded, "FundAccount", aggregate_id,
                                version, "InterestSettled")
    if journal is None:
        return False
    row = batch.require("accounts", aggregate_id, position)
    processed = batch.processed
    if interest_fen:
        account_no = row["account_no"]
        line = (position, 1, account_no, value_date, recorded, "interest", KIND_NAMES_ZH.get("interest", "interest"),
                interest_fen, posting_id, None, fast.flag(False), None, None, "",
                f"{start.isoformat()}~{end.isoformat()}"[:200])
        row["balance_fen"] += interest_fen
        processed[tables.account_lines].append(line)
        batch.lines_by_posting[(account_no, posting_id)] = line
    if journal:
        processed[tables.journal_lines].extend(journal)
    row["version"] = version
    batch.put("accounts", row)
    return True
