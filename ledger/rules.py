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
