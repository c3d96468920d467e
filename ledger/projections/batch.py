"""One page of the log applied to the read tables: loaded rows, changed rows, new rows, one commit.

Handlers never issue SQL themselves. They read and change entity rows through
:meth:`Batch.get` / :meth:`Batch.put` (loaded for the whole page in a few ``IN`` queries)
and append rows with :meth:`Batch.append`. :meth:`Batch.flush` moves the tracked position
(only if it is still where this page started) and writes it all — changed entity rows
replaced whole, new rows inserted with ``executemany`` — inside the caller's transaction:
either the page and its position commit together, or neither does.

A rebuild (``ledger.projections.rebuild``) runs the same handlers into shadow tables: there
``Batch.table`` maps each read table to the physical table being built, ``tracking_name`` is
None (the position moves when the shadow tables replace the live ones), new rows go to the
rebuild's ``writer`` (COPY on PostgreSQL), and the topic fast paths append rows that are
already in the driver's form with :meth:`Batch.append_processed`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, Table, and_, select, update

from ledger.money import Money
from ledger.projections import tables
from ledger.projections.registry import ProjectionError, Registry

IN_LIST_MAX = 500


def fen(amount: Money) -> int:
    """Whole fen of a money amount (exact: Money has two decimals)."""
    return int(amount.amount * 100)


def money(amount_fen: int) -> Money:
    return Money(Decimal(amount_fen) / 100)


def dump_json(value: Any) -> str:
    """Canonical JSON text: the same value always gives the same bytes (rebuild digest)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def chunks(items: list[Any], size: int = IN_LIST_MAX) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _insert_plan(connection: Connection, table: Table) -> tuple[str, list[tuple[str, Any]]]:
    """The INSERT text for the DBAPI and each column's bind processor (as Core would apply it)."""
    dialect = connection.dialect
    preparer = dialect.identifier_preparer
    schema = (connection.get_execution_options().get("schema_translate_map") or {}).get(None)
    name = preparer.quote(table.name)
    qualified = f"{preparer.quote_schema(schema)}.{name}" if schema else name
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    columns = [(column.name, column.type._cached_bind_processor(dialect)) for column in table.columns]
    names = ", ".join(preparer.quote(column_name) for column_name, _ in columns)
    return f"INSERT INTO {qualified} ({names}) VALUES ({', '.join(marker for _ in columns)})", columns


def processed_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as the driver gets them: in column order, through the bind processors Core uses
    (memoised: dates and recorded times repeat across a page), so what is stored is identical."""
    _statement, columns = _insert_plan(connection, table)
    values_by_column = []
    for name, process in columns:
        values = [row[name] for row in rows]
        if process is not None:
            converted = {value: process(value) for value in set(values)}
            values = [converted[value] for value in values]
        values_by_column.append(values)
    return list(zip(*values_by_column))


def insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``executemany`` straight to the driver: Core's per-row parameter handling costs 3× the insert."""
    insert_processed(connection, table, processed_rows(connection, table, rows))


def insert_processed(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """Rows already in the driver's form (column order, bind processors applied)."""
    if rows:
        connection.exec_driver_sql(_insert_plan(connection, table)[0], rows)


class Batch:
    """The read rows one page touches, held in memory until :meth:`flush`."""

    def __init__(self, connection: Connection, registry: Registry,
                 rows: dict[str, dict[str, dict[str, Any]]] | None = None, *, app: Any = None,
                 context: dict[str, Any] | None = None, physical: dict[Table, Table] | None = None,
                 writer: Callable[[Connection, Table, list[tuple[Any, ...]]], None] = insert_processed):
        self.connection = connection
        self.physical = physical or {}  # read table -> the table written (a rebuild's shadow table)
        self.writer = writer
        self.registry = registry
        self.app = app  # the event store's application: handlers that replay an aggregate load through it
        # ``context``: state a handler keeps between pages of one run (dropped with ``rows`` on any error)
        self.context = context if context is not None else {}
        # ``rows`` may be carried from page to page by one catch-up (the projector drops it on any error).
        self.rows = rows if rows is not None else {}
        for name in registry.entities:
            self.rows.setdefault(name, {})
        self.changed: dict[str, set[str]] = {name: set() for name in registry.entities}
        self.new_rows: dict[Table, list[dict[str, Any]]] = defaultdict(list)
        self.processed: dict[Table, list[tuple[Any, ...]]] = defaultdict(list)  # fast paths' rows
        self.lines_by_posting: dict[tuple[str, str], Any] = {}

    def table(self, table: Table) -> Table:
        """The physical table for a read table: itself, or the shadow table a rebuild fills."""
        return self.physical.get(table, table)

    # -- entity rows ----------------------------------------------------------------
    def prefetch(self, entity_name: str, keys: Iterable[str]) -> None:
        entity = self.registry.entities[entity_name]
        cache = self.rows[entity_name]
        wanted = sorted({key for key in keys if key not in cache})
        table = self.table(entity.table)
        column = table.c[entity.key_column]
        for chunk in chunks(wanted):
            for row in self.connection.execute(select(table).where(column.in_(chunk))).mappings():
                cache[row[entity.key_column]] = dict(row)

    def get(self, entity_name: str, key: str) -> dict[str, Any] | None:
        """The row as changed so far in this page (loaded by ``prefetch`` or on a miss)."""
        cache = self.rows[entity_name]
        if key not in cache:
            self.prefetch(entity_name, [key])
        return cache.get(key)

    def require(self, entity_name: str, key: str, position: int) -> dict[str, Any]:
        row = self.get(entity_name, key)
        if row is None:
            raise ProjectionError(f"no {entity_name} row {key} (an event arrived before its aggregate was created)",
                                  position)
        return row

    def put(self, entity_name: str, row: dict[str, Any]) -> dict[str, Any]:
        """Mark ``row`` (new or changed) to be written at flush."""
        key = row[self.registry.entities[entity_name].key_column]
        self.rows[entity_name][key] = row
        self.changed[entity_name].add(key)
        return row

    # -- appended rows ---------------------------------------------------------------
    def append(self, table: Table, row: dict[str, Any]) -> None:
        self.new_rows[table].append(row)
        if table is tables.account_lines:
            self.lines_by_posting[(row["account_no"], row["posting_id"])] = row

    def append_processed(self, table: Table, row: tuple[Any, ...]) -> None:
        """A row already in the driver's form, in ``table``'s column order (a topic fast path)."""
        self.processed[table].append(row)

    def find_line(self, account_no: str, posting_id: str) -> dict[str, Any] | None:
        """An account line by its posting id: this page's first, then the table.

        A line a fast path appended is given as a dict of its stored values (dates as the
        driver got them): callers read its text columns only (kind, period, reason code).
        """
        pending = self.lines_by_posting.get((account_no, posting_id))
        if type(pending) is tuple:
            return dict(zip(tables.account_lines.c.keys(), pending))
        if pending is not None:
            return pending
        table = self.table(tables.account_lines)
        found = self.connection.execute(
            select(table).where(and_(table.c.account_no == account_no, table.c.posting_id == posting_id))
            .order_by(table.c.position, table.c.line_no).limit(1)).mappings().first()
        return dict(found) if found else None

    # -- writing ---------------------------------------------------------------------
    def flush(self, tracking_name: str | None, position_before: int, position_after: int) -> None:
        """Move the tracked position, then write every changed and new row (one transaction).

        The position goes first so that a rival projector's page is refused as a conflict
        before any row of it could collide. A rebuild passes no ``tracking_name``: its
        position moves with the swap of the tables.
        """
        if tracking_name is not None:
            self._advance(tracking_name, position_before, position_after)
        for entity_name, keys in self.changed.items():
            if keys:
                self._replace(entity_name, sorted(keys))
        for table in {**self.new_rows, **self.processed}:
            physical = self.table(table)
            rows = processed_rows(self.connection, physical, self.new_rows.get(table) or [])
            rows.extend(self.processed.get(table) or ())
            if rows:
                self.writer(self.connection, physical, rows)

    def _replace(self, entity_name: str, keys: list[str]) -> None:
        entity = self.registry.entities[entity_name]
        table = self.table(entity.table)
        column = table.c[entity.key_column]
        for chunk in chunks(keys):
            self.connection.execute(table.delete().where(column.in_(chunk)))
        rows = [self.rows[entity_name][key] for key in keys]
        self.writer(self.connection, table, processed_rows(self.connection, table, rows))

    def _advance(self, tracking_name: str, position_before: int, position_after: int) -> None:
        """Optimistic: a second projector that applied this page first makes this one roll back."""
        table = tables.tracking
        result = self.connection.execute(
            update(table).where(and_(table.c.name == tracking_name, table.c.position == position_before))
            .values(position=position_after))
        if result.rowcount != 1:
            raise ProjectionConflictError(
                f"{tracking_name}: the tracked position moved past {position_before} while this page was applied")


class ProjectionConflictError(ProjectionError):
    """Another projector applied the same page first; this page rolled back (nothing lost or repeated)."""
