"""Domain exceptions, each named after the rule it enforces (SPEC ids in ``rule``).

Every refusal of a command raises one of these before any event is created,
so a refused command leaves every balance as it was.
"""

from __future__ import annotations

from ledger.aggregates.base import LedgerRuleError


class InvalidIdentityError(LedgerRuleError):
    rule = "ACC-4"


class InvalidCreditCodeError(LedgerRuleError):
    rule = "EMP-1"


class EmployerStateError(LedgerRuleError):
    rule = "EMP-1"


class SpouseLinkError(LedgerRuleError):
    rule = "ACC-4"


class AccountStateError(LedgerRuleError):
    """ACC-1/ACC-2: the command is not allowed in the account's state."""

    rule = "ACC-2"


class InsufficientBalanceError(LedgerRuleError):
    """ACC-3: a debit above the available balance is refused whole."""

    rule = "ACC-3"


class AccountFrozenError(LedgerRuleError):
    rule = "ACC-5"


class FreezeAuthorityError(LedgerRuleError):
    rule = "ACC-5"


class ContributionMismatchError(LedgerRuleError):
    """CON-1/CON-4: a line disagrees with the member's dated base and ratios."""

    rule = "CON-1"


class BaseOutOfRangeError(LedgerRuleError):
    rule = "CON-1"


class RatioOutOfRangeError(LedgerRuleError):
    rule = "CON-1"


class PeriodAlreadyCreditedError(LedgerRuleError):
    rule = "CON-2"


class DocumentTotalError(LedgerRuleError):
    rule = "CON-4"


class DocumentStateError(LedgerRuleError):
    rule = "CON-4"


class DeferralError(LedgerRuleError):
    rule = "CON-3"


class WithdrawalKindError(LedgerRuleError):
    rule = "WD-1"


class WithdrawalEvidenceError(LedgerRuleError):
    rule = "WD-1"


class WithdrawalCapError(LedgerRuleError):
    rule = "WD-2"


class WithdrawalNotAllowedError(LedgerRuleError):
    rule = "WD-4"


class ReversalError(LedgerRuleError):
    rule = "COR-1"


class ReversalWouldOverdrawError(LedgerRuleError):
    rule = "COR-2"


class InterestSettlementError(LedgerRuleError):
    rule = "INT-1"


class ValueDateError(LedgerRuleError):
    rule = "MNY-4"


class IdempotencyConflictError(LedgerRuleError):
    """The same idempotency key was used with other content."""

    rule = "IDEMPOTENCY"


class PayoutStateError(LedgerRuleError):
    rule = "GL-1"


class SuspenseError(LedgerRuleError):
    rule = "GL-1"
