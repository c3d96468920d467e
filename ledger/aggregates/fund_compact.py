"""The fund account's snapshot: its decision state, folded and written compactly (issue 14, ADR 0015).

``encode`` folds what the rules no longer decide on into the account's bookkeeping — movements
whose interest effect lies before the horizon (the day after the last interest settlement) into
``carried``, credited periods and bases older than six months before it, withdrawals older than
``WITHDRAWAL_WINDOW_DAYS``, settled interest years but the last, offset totals of years before
last, and every posting (a posting is read from the events when a reversal names it) — and
writes the rest with plain JSON types: dates as day ordinals, amounts as strings, kinds as
short codes. ``decode`` gives the aggregate back; rules reaching before its horizon raise
``HistoryRequired`` (see ``ledger.aggregates.fund_account``). A snapshot of an account with ten
years of monthly contributions stays near 1 KB whatever its age.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.interest import INTEREST_KIND
from ledger.money import Money

FORMAT = 3  # 3: movements and credited periods as flat integers (fen, day and month offsets)
CREDITED_MONTHS_KEPT = 6  # LN-1 looks at the six periods before the application month
WITHDRAWAL_WINDOW_DAYS = 3 * 366  # WD-2 windows: purchase 12 months ⚙, rent cover, loan repayment this year
KINDS = ("remittance", "back-payment", "withdrawal", "interest", "offset", "reversal", "court-deduction",
         "recovery", "interest-adjustment", "payout-failed", "standing-withdrawal", "transfer-in", "carried")
KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}


def _kind_code(kind: str) -> int | str:
    return KIND_CODES.get(kind, kind)


def _kind_name(code: int | str) -> str:
    return KINDS[code] if isinstance(code, int) else code


def _fen(amount: Decimal) -> int:
    return int(amount.scaleb(2))


def _month(period: str) -> int:
    return int(period[:4]) * 12 + int(period[5:7]) - 1


@lru_cache(maxsize=4096)
def _period(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


class FundSnapshotError(ValueError):
    """A compact snapshot that does not have the shape this module writes."""


def _period_minus(period: str, months: int) -> str:
    year, month = int(period[:4]), int(period[5:7])
    total = year * 12 + month - 1 - months
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


def horizon_for(account: Any) -> date:
    """The first value date a compact account keeps movements for: the day after its last settlement."""
    horizon = account.horizon or account.opened_on
    ends = [year["end"] for year in account.interest_years.values()]
    return max(horizon, max(ends) + timedelta(days=1)) if ends else horizon


def _effective(row: list[Any]) -> date:
    """INT-1: an interest credit (30 June) counts from the next day."""
    return row[0] + timedelta(days=1) if row[2] == INTEREST_KIND else row[0]


@lru_cache(maxsize=4096)
def _stored_money(text: str) -> Money:
    """Amounts read back from a snapshot (bases, settlement interest, freezes): Money is immutable and a
    centre's bases repeat from account to account, so one object per distinct text is shared."""
    return Money.stored(text)


@lru_cache(maxsize=4096)
def _employer_uuid(text: str) -> UUID:
    """An employer's id (thousands of accounts share one employer): parsed once per distinct text."""
    return UUID(text)


@lru_cache(maxsize=4096)
def _timestamp(text: str) -> "datetime":
    """A snapshot's created/modified timestamp (accounts saved in one batch share it)."""
    return datetime.fromisoformat(text)


def _day(value: date | None) -> int | None:
    return value.toordinal() if value is not None else None


@lru_cache(maxsize=65536)
def _from_day(value: int | None) -> date | None:
    return date.fromordinal(value) if value is not None else None


def encode(account: Any) -> dict[str, Any]:
    """The compact snapshot state of ``account`` (a compact or a history-mode aggregate)."""
    horizon = horizon_for(account)
    kept = [row for row in account.movements if _effective(row) >= horizon]
    carried = account.carried + sum((row[1] for row in account.movements if _effective(row) < horizon), Decimal(0))
    credited_from = max(filter(None, [account.credited_from, _period_minus(f"{horizon:%Y-%m}", CREDITED_MONTHS_KEPT)]))
    in_force = [base for base in account.bases if base[0] <= credited_from][-1:]
    bases = in_force + [base for base in account.bases if base[0] > credited_from]
    withdrawals_from = max(filter(None, [account.withdrawals_from, horizon - timedelta(days=WITHDRAWAL_WINDOW_DAYS)]))
    last_end = horizon - timedelta(days=1)
    return {
        "f": FORMAT, "no": account.account_no, "member": str(account.member_id),
        "employer": str(account.employer_id), "opened": _day(account.opened_on), "state": account.state,
        "sealed": _day(account.sealed_on), "close_reason": account.close_reason, "closed": _day(account.closed_on),
        "created": account._created_on.isoformat(), "modified": account._modified_on.isoformat(),
        "horizon": _day(horizon), "carried": str(carried), "total": str(account.total),
        "mv": [value for row in kept
               for value in (row[0].toordinal() - horizon.toordinal(), _fen(row[1]), _kind_code(row[2]))],
        "cr": [value for period, kinds in sorted(account.credited.items()) if period >= credited_from
               for kind, amount in kinds.items()
               for value in (_month(period) - _month(credited_from), _kind_code(kind), _fen(amount))],
        "cr_from": credited_from,
        "bases": [[period, str(base)] for period, base in bases], "bases_from": credited_from,
        "freezes": {key: {"authority": f["authority"], "document": f["document"],
                          "amount": None if f["amount"] is None else str(f["amount"]),
                          "from": _day(f["from"]), "until": _day(f["until"])}
                    for key, f in account.freezes.items()},
        "iy": {key: {"start": _day(y["start"]), "end": _day(y["end"]), "interest": str(y["interest"]),
                     "closing": y["closing"], "posting_id": y["posting_id"]}
               for key, y in account.interest_years.items() if y["end"] >= last_end},
        "wd": [_encode_withdrawal(w) for w in account.withdrawals if w["value_date"] >= withdrawals_from],
        "wd_from": _day(withdrawals_from),
        "last_wd": {kind: _day(day) for kind, day in account.last_withdrawn_on.items()},
        "offsets": {year: str(total) for year, total in account.offset_by_year.items()
                    if int(year) >= horizon.year - 1},
        "agreement": account.agreement,
    }


def _encode_withdrawal(row: dict[str, Any]) -> dict[str, Any]:
    return {"kind": row["kind"], "code": row["code"], "amount": str(row["amount"]),
            "value_date": _day(row["value_date"]), "posting_id": row["posting_id"], "evidence": row["evidence"]}


def _decode_withdrawal(row: dict[str, Any]) -> dict[str, Any]:
    return {"kind": row["kind"], "code": row["code"], "amount": _stored_money(row["amount"]),
            "value_date": _from_day(row["value_date"]), "posting_id": row["posting_id"], "evidence": row["evidence"]}


def decode(state: dict[str, Any], originator_id: UUID, version: int) -> Any:
    """The aggregate a compact snapshot holds."""
    from ledger.aggregates.fund_account import FundAccount

    if not isinstance(state, dict) or state.get("f") != FORMAT:
        raise FundSnapshotError(f"not a format-{FORMAT} fund account snapshot")
    account = object.__new__(FundAccount)
    account.__dict__.update({
        "_id": originator_id, "_version": version, "_pending_events": [],
        "_created_on": _timestamp(state["created"]),
        "_modified_on": _timestamp(state["modified"]),
        "account_no": state["no"], "member_id": UUID(state["member"]), "employer_id": _employer_uuid(state["employer"]),
        "opened_on": _from_day(state["opened"]), "state": state["state"], "sealed_on": _from_day(state["sealed"]),
        "close_reason": state["close_reason"], "closed_on": _from_day(state["closed"]),
        "bases": [[period, _stored_money(base)] for period, base in state["bases"]],
        "movements": _movements(state["mv"], state["horizon"]),
        "postings": {},
        "credited": _credited(state["cr"], state["cr_from"]),
        "freezes": {key: {"authority": f["authority"], "document": f["document"],
                          "amount": None if f["amount"] is None else _stored_money(f["amount"]),
                          "from": _from_day(f["from"]), "until": _from_day(f["until"])}
                    for key, f in state["freezes"].items()},
        "interest_years": {key: {"start": _from_day(y["start"]), "end": _from_day(y["end"]),
                                 "interest": _stored_money(y["interest"]), "closing": y["closing"],
                                 "posting_id": y["posting_id"]} for key, y in state["iy"].items()},
        "withdrawals": [_decode_withdrawal(w) for w in state["wd"]],
        "agreement": state["agreement"],
        "horizon": _from_day(state["horizon"]), "carried": _decimal(state["carried"]), "total": _decimal(state["total"]),
        "credited_from": state["cr_from"], "bases_from": state["bases_from"],
        "withdrawals_from": _from_day(state["wd_from"]),
        "last_withdrawn_on": {kind: _from_day(day) for kind, day in state["last_wd"].items()},
        "offset_by_year": {year: _decimal(total) for year, total in state["offsets"].items()},
    })
    return account


def _movements(flat: list[int], horizon: int) -> list[list[Any]]:
    day, amount, kind = date.fromordinal, _decimal_of_fen, _kind_name
    return [[day(horizon + flat[i]), amount(flat[i + 1]), kind(flat[i + 2]), None] for i in range(0, len(flat), 3)]


@lru_cache(maxsize=65536)
def _decimal_of_fen(fen: int) -> Decimal:
    """Amounts repeat (a member's monthly share): Decimals are immutable, so one per value is shared."""
    return Decimal(fen).scaleb(-2)


@lru_cache(maxsize=65536)
def _decimal(text: str) -> Decimal:
    """A balance or total read back from a snapshot (Decimals are immutable: equal texts share one)."""
    return Decimal(text)


def _credited(flat: list[int], credited_from: str) -> dict[str, dict[str, Decimal]]:
    base, credited = _month(credited_from), {}
    for i in range(0, len(flat), 3):
        credited.setdefault(_period(base + flat[i]), {})[_kind_name(flat[i + 1])] = _decimal_of_fen(flat[i + 2])
    return credited


def decision_state(account: Any) -> dict[str, Any]:
    """What two copies of an account must agree on: the compact state without its timestamps."""
    import copy

    state = encode(copy.deepcopy(account))
    state.pop("created")
    state.pop("modified")
    return state
