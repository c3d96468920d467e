"""The read tables (CQRS read side, ADR 0008): plain SQLAlchemy Core tables beside the events.

They live in the same database (and PostgreSQL schema) as the event store and are derived
from it alone, so they can be dropped and rebuilt at any time. Money is stored as whole fen
in integer columns (``amount_fen``): exact on every backend, summable in SQL, never a float
(MNY-1). Recorded times are naive UTC (``recorded_at_utc``) so that SQLite and PostgreSQL
compare them the same way (MNY-4 "as known at"). Small dated lists that are only ever read
whole (bases, ratios, deferrals, freezes, loan marks) are canonical JSON text.

``rm_tracking`` holds, per projection, the last notification position applied; it is
written in the same transaction as the rows that position produced.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from ledger.text import CODE_CHARS_MAX, NAME_CHARS_MAX

metadata = MetaData()

ID = 36  # a UUID as text
CODE = CODE_CHARS_MAX  # the entry points check every text against these sizes (ledger.text, TXT-1)
NAME = NAME_CHARS_MAX

tracking = Table(
    "rm_tracking", metadata,
    Column("name", String(CODE), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

employers = Table(
    "rm_employers", metadata,
    Column("employer_id", String(ID), primary_key=True),
    Column("credit_code", String(CODE), nullable=False, unique=True),
    Column("name", String(NAME), nullable=False),
    Column("bank_account", String(CODE), nullable=False),
    Column("state", String(2), nullable=False),
    Column("opened_on", Date, nullable=False),
    Column("ratios_json", Text, nullable=False),  # [[from_period, employer %, employee %]]
    Column("deferrals_json", Text, nullable=False),  # [{first, last, deadline}]
    Column("version", Integer, nullable=False),
)

members = Table(
    "rm_members", metadata,
    Column("member_id", String(ID), primary_key=True),
    Column("id_number", String(CODE), nullable=False, unique=True),
    Column("name", String(NAME), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(1), nullable=False),
    Column("employer_id", String(ID), nullable=False),
    Column("account_no", String(CODE), nullable=False),
    Column("spouse_id", String(ID)),
    Column("card_bank", String(CODE)),
    Column("loans_used", Integer, nullable=False),
    Column("loan_marks_json", Text, nullable=False),  # [[recorded_at_utc, loan_id, mark]] in order
    Column("fraud_records_json", Text, nullable=False),  # [[value_date, reference]]
    Column("version", Integer, nullable=False),
)

accounts = Table(
    "rm_accounts", metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("account_no", String(CODE), nullable=False, unique=True),
    Column("member_id", String(ID), nullable=False),
    Column("member_name", String(NAME), nullable=False),
    Column("id_number", String(CODE), nullable=False),
    Column("employer_id", String(ID), nullable=False),
    Column("state", String(8), nullable=False),
    Column("export_code", String(2), nullable=False),
    Column("is_frozen", Boolean, nullable=False),
    Column("close_reason", String(CODE)),
    Column("opened_on", Date, nullable=False),
    Column("sealed_on", Date),
    Column("closed_on", Date),
    Column("agreement", String(CODE)),
    Column("balance_fen", BigInteger, nullable=False),  # every value date, everything recorded
    Column("bases_json", Text, nullable=False),  # [[from_period, base]]
    Column("freezes_json", Text, nullable=False),  # {freeze_id: {authority, document, amount, from, until}}
    Column("version", Integer, nullable=False),
)

account_states = Table(
    "rm_account_states", metadata,
    Column("position", BigInteger, primary_key=True),
    Column("account_no", String(CODE), nullable=False),
    Column("value_date", Date, nullable=False),
    Column("recorded_at_utc", DateTime, nullable=False),
    Column("event", String(CODE), nullable=False),
    Column("state", String(8), nullable=False),
    Column("export_code", String(2), nullable=False),
    Index("rm_account_states_account_idx", "account_no", "value_date"),
)

account_lines = Table(
    "rm_account_lines", metadata,
    Column("position", BigInteger, primary_key=True),
    Column("line_no", Integer, primary_key=True, autoincrement=False),
    Column("account_no", String(CODE), nullable=False),
    Column("value_date", Date, nullable=False),
    Column("recorded_at_utc", DateTime, nullable=False),
    Column("kind", String(CODE), nullable=False),
    Column("kind_zh", String(CODE), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),  # signed: credit +, debit -
    Column("posting_id", String(NAME), nullable=False),
    Column("original_posting_id", String(NAME)),  # reversal, credit-back: the posting it answers
    Column("is_reversal", Boolean, nullable=False),
    Column("reverses_kind", String(CODE)),  # a reversal: the kind of the posting it mirrors
    Column("period", String(7)),  # a contribution (or its reversal): YYYY-MM
    Column("reason_code", String(8), nullable=False),
    Column("reference", String(NAME), nullable=False),  # document, loan number, court document ...
    Index("rm_account_lines_account_idx", "account_no", "value_date", "recorded_at_utc"),
)

journal_lines = Table(
    "rm_journal_lines", metadata,
    Column("position", BigInteger, primary_key=True),
    Column("entry_no", Integer, primary_key=True, autoincrement=False),
    Column("line_no", Integer, primary_key=True, autoincrement=False),
    Column("value_date", Date, nullable=False),
    Column("recorded_at_utc", DateTime, nullable=False),
    Column("account", String(CODE), nullable=False),
    Column("side", String(2), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("source_type", String(CODE), nullable=False),
    Column("source_id", String(ID), nullable=False),
    Column("source_version", Integer, nullable=False),
    Column("event", String(CODE), nullable=False),
    Index("rm_journal_lines_date_idx", "value_date"),
    # No (account, value_date) index: the one query on this table is the trial balance, which sums every
    # account and side; SQLite chose that index for the GROUP BY and ran 1.3-2.3x slower with it (measured
    # on 384k lines) than with the date index and a sort. ``OBSOLETE_INDEXES`` drops it from older stores.
)

OBSOLETE_INDEXES = ("rm_journal_lines_account_idx",)
