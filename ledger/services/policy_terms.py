"""Which running loans a policy change does not reach: the terms fixed at disbursement (ADR 0015).

A loan's grace days, penalty multiplier and day count (LN-7), prepayment day count, blackout and minimum
(LN-6) and due day (LN-4) are recorded in its Disbursed event and govern it for life; its events replay to
the same figures under any later policy file. A policy version that changes one of them applies to loans
disbursed from its date on. :func:`policy_terms_report` names each such change and the running loans that
keep their recorded value, so staff see it announced instead of silently ignored (``gjj policy check``).
"""

from __future__ import annotations

from typing import Any

from ledger.aggregates.loan import ACTIVE
from ledger.application import chunked
from ledger.policy import TermChange, disbursement_term_changes

LOANS_LOADED_PER_BATCH = 500
RUNNING_LOANS_LISTED_MAX = 200


def recorded_term(terms: dict[str, Any], term: str) -> Any:
    """A term as the loan recorded it; a due day of 0 (the disbursement day) is recorded as None."""
    value = terms.get(term)
    return 0 if term == "due_day" and value is None else value


def _keeps_other_terms(loan: Any, change: TermChange) -> bool:
    if loan.state != ACTIVE or loan.disbursed_on is None or loan.disbursed_on >= change.effective_from:
        return False
    return recorded_term(loan.terms or {}, change.term) != change.after


def policy_terms_report(ledger: Any) -> dict[str, Any]:
    """Every change of a term fixed at disbursement in the policy, with the running loans that keep theirs."""
    policy = ledger.policy
    changes = disbursement_term_changes(policy)
    keeping: dict[int, list[dict[str, Any]]] = {index: [] for index in range(len(changes))}
    for ids in chunked(ledger.loan_ids() if changes else [], LOANS_LOADED_PER_BATCH):
        for loan in ledger.load_many(ids).values():
            for index, change in enumerate(changes):
                if _keeps_other_terms(loan, change):
                    keeping[index].append({"loan_no": loan.loan_no, "disbursed_on": loan.disbursed_on.isoformat(),
                                           "recorded": str(recorded_term(loan.terms, change.term))})
    rows = [{"effective_from": change.effective_from.isoformat(), "key": change.key, "before": str(change.before),
             "after": str(change.after), "rule": change.rule, "notice": str(change),
             "running_loans_keeping_their_terms": len(keeping[index]),
             "loans": sorted(keeping[index], key=lambda row: row["loan_no"])[:RUNNING_LOANS_LISTED_MAX]}
            for index, change in enumerate(changes)]
    return {"source": policy.source, "centre": policy.centre_name,
            "versions": [version.effective_from.isoformat() for version in policy.versions],
            "disbursement_term_changes": rows}
