"""The ledger application: the store plumbing plus every use-case mixin, wired once.

``Ledger(url)`` opens the event store named by the URL (or ``GJJ_DATABASE_URL``,
or the embedded SQLite default) with the policy and clock given; entry points
(CLI, HTTP API, scheduler) build one and call its commands.
"""

from __future__ import annotations

from ledger.aggregates.fund_account import FundAccount
from ledger.aggregates.loan import Loan
from ledger.aggregates.offset import OffsetRunLog
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

# A snapshot is the decision state (ADR 0017), taken from the aggregate in memory by a save that moved it this
# many events past its last one, sealed and written in the save's own transaction (ADR 0018). An account's
# events replay cheaply (a movement each), a loan's payments less so (each runs the LN-5 allocation again):
# measured on the offset day (docs/performance.md), 6 and 3 cost the least CPU.
SNAPSHOT_INTERVAL_EVENTS = 6
LOAN_SNAPSHOT_INTERVAL_EVENTS = 3
RUN_LOG_SNAPSHOT_INTERVAL_EVENTS = 20  # a job's run log gains an event a day; its state is bounded


class Ledger(AnchoredApplicationMixin, AccountCommands, ContributionCommands, WithdrawalCommands, LoanCommands,
             OffsetCommands, DebitCommands, BankingCommands, BookCommands, LedgerBase):
    """The book of record of one fund centre; every committed save extends the audit chain (AUD-1)."""

    snapshotting_intervals = {FundAccount: SNAPSHOT_INTERVAL_EVENTS, Loan: LOAN_SNAPSHOT_INTERVAL_EVENTS,
                              OffsetRunLog: RUN_LOG_SNAPSHOT_INTERVAL_EVENTS}

    def before_save(self, aggregates) -> None:  # type: ignore[no-untyped-def]
        self.adjust_backdated_interest(aggregates)

    @property
    def centre_bank_account(self) -> str:
        return self.policy.at(self.today()).bank.centre_account
