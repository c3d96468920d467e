"""The PostgreSQL store as the ledger opens it: eventsourcing's factory with sessions set for short
transactions.

``jit = off``: PostgreSQL compiles a query to machine code when its estimated cost is high, and a
bulk-loaded table that autovacuum has not analysed yet (or a server with autovacuum off, as on this
project's machine kind) makes every estimate high: a 1 ms index probe per batch paid 100 ms of JIT
compilation. The ledger's statements are short and indexed; JIT never pays for itself on them.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresFactory

SESSION_OPTIONS = "-c jit=off"


class LedgerPostgresFactory(PostgresFactory):
    def __init__(self, env: Any):
        super().__init__(env)
        kwargs = self.datastore.pool.kwargs  # the pool connects lazily: every connection gets the options
        kwargs["options"] = " ".join(filter(None, [kwargs.get("options"), SESSION_OPTIONS]))
