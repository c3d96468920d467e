"""The ledger application: the store plumbing plus every use-case mixin, wired once.

``Ledger(url)`` opens the event store named by the URL (or ``GJJ_DATABASE_URL``,
or the embedded SQLite default) with the policy and clock given; entry points
(CLI, HTTP API, scheduler) build one and call its commands.
"""

from __future__ import annotations

from ledger.aggregates.fund_account import FundAccount
from ledger.aggregates.loan import Loan
from ledger.application import LedgerBase
from ledger.audit import AnchoredApplicationMixin
from ledger.services.accounts import AccountCommands
from ledger.services.banking import BankingCommands
from ledger.services.books import BookCommands
from ledger.services.contributions import ContributionCommands
from ledger.services.debits import DebitCommands
from ledger.services.loans import LoanCommands
from ledger.services.offset import OffsetCommands
from ledger.services.withdrawals import WithdrawalCommands

# A snapshot is the decision state (ADR 0017): small and cheap to write, so one is taken from the aggregate in
# memory after every save that changed it, sealed and written in the save's own transaction.
SNAPSHOT_INTERVAL_EVENTS = 1
LOAN_SNAPSHOT_INTERVAL_EVENTS = 1


class Ledger(AnchoredApplicationMixin, AccountCommands, ContributionCommands, WithdrawalCommands, LoanCommands,
             OffsetCommands, DebitCommands, BankingCommands, BookCommands, LedgerBase):
    """The book of record of one fund centre; every committed save extends the audit chain (AUD-1)."""

    snapshotting_intervals = {FundAccount: SNAPSHOT_INTERVAL_EVENTS, Loan: LOAN_SNAPSHOT_INTERVAL_EVENTS}

    def before_save(self, aggregates) -> None:  # type: ignore[no-untyped-def]
        self.adjust_backdated_interest(aggregates)

    @property
    def centre_bank_account(self) -> str:
        return self.policy.at(self.today()).bank.centre_account
