"""The one base of every business-rule refusal, importable by pure modules (no eventsourcing here).

``rule`` is the SPEC id (ACC-3, LN-6 ...), ``field`` the input that broke it; entry points print
``field: message [RULE]`` and exit non-zero (a 4xx over HTTP).
"""

from __future__ import annotations


class LedgerRuleError(Exception):
    """Base of every business-rule refusal; ``rule`` is the SPEC id, ``field`` the input."""

    rule = "RULE"

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None):
        self.field = field
        if rule:
            self.rule = rule
        super().__init__(message)

    def __str__(self) -> str:
        base = super().__str__()
        where = f"{self.field}: " if self.field else ""
        return f"{where}{base} [{self.rule}]"


class HistoryRequired(Exception):
    """A rule reached back past what a compact aggregate keeps (its horizon, ADR 0015).

    Not a refusal: the application loads the aggregate again from all its events (history mode,
    no snapshot) and runs the command or query again. Raised before any event exists, or while a
    compact aggregate is given an event it cannot apply without its history (an old event
    format); either way nothing has been saved.
    """

    def __init__(self, aggregate_id: object, why: str):
        self.aggregate_id = aggregate_id
        super().__init__(f"{aggregate_id}: {why} needs the aggregate's history")
