"""Which handler projects which event topic, and which read rows it needs loaded first.

A handler is registered per event topic (``@REGISTRY.handles(FundAccount, "Contributed")``)
and is called as ``handler(batch, event, meta)`` for every such event, in notification
order. ``prefetch`` names the entity rows the handler reads or writes, so that the
projector loads a whole page's rows in a few ``IN`` queries instead of one query per event:
``("@id", "accounts")`` is the event's own aggregate, ``("member_id", "members")`` the row
whose key is the event's ``member_id`` attribute. Entities are tables keyed by one column
(``REGISTRY.entity("accounts", tables.accounts, "account_id")``). A *finalizer* runs once per
page after its events, for rows derived from a whole aggregate (a loan's instalments) that
are cheaper to write once than per event. Modules of handlers add
themselves on import (``ledger.projections.fund``, ``ledger.projections.loans``); a topic
with no handler is skipped without being decoded.

A topic may also have a *fast path* (``@REGISTRY.fast_path(FundAccount, "Contributed",
replaces=(contributed,))``), used by a full rebuild only: it gets the event's stored JSON
as a plain dict and appends rows already in the driver's form, skipping the event object.
It must write exactly what the handlers it replaces (and the journal lines) would, and
returns False to hand any event whose stored shape it does not know to those handlers;
the rebuild uses it only while the topic's handlers are exactly ``replaces``. Digest tests
compare a rebuild with the incremental ``catch_up`` (which never uses a fast path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Table

from ledger.application import topic_of

Handler = Callable[[Any, Any, "EventMeta"], None]


class ProjectionError(RuntimeError):
    """An event cannot be projected: the read side would be wrong, so it stops (ADR 0008)."""

    rule = "ST-1"

    def __init__(self, message: str, position: int | None = None):
        self.position = position
        self.field = "position"
        where = f"position {position}: " if position is not None else ""
        super().__init__(f"{where}{message}")


@dataclass(frozen=True)
class EventMeta:
    """Where an event sits in the log and when it was recorded (MNY-4)."""

    position: int
    recorded_at_utc: datetime
    aggregate_id: str
    version: int
    aggregate_type: str
    event_name: str


@dataclass(frozen=True)
class Entity:
    """A read table keyed by one column whose rows handlers load, change and write back whole."""

    name: str
    table: Table
    key_column: str


@dataclass(frozen=True)
class Registration:
    topic: str
    handler: Handler
    prefetch: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class FastPath:
    """``builder(batch, fast, position, aggregate_id, version, state) -> bool`` for one topic.

    A builder that is ``write(…, parse(fast, state))`` may name both: ``parse`` needs only the
    stored JSON (None: a shape it does not know), so a rebuild may run it in a second process."""

    topic: str
    builder: Callable[..., bool]
    replaces: tuple[Handler, ...]
    parse: Callable[[Any, dict[str, Any]], Any] | None = None
    write: Callable[..., bool] | None = None


@dataclass
class Registry:
    """Topic → handlers, entity tables, and every table the projection owns."""

    by_topic: dict[str, list[Registration]] = field(default_factory=dict)
    entities: dict[str, Entity] = field(default_factory=dict)
    finalizers: list[Callable[[Any], None]] = field(default_factory=list)
    fast_paths: dict[str, FastPath] = field(default_factory=dict)

    def entity(self, name: str, table: Table, key_column: str) -> None:
        assert name not in self.entities or self.entities[name].table is table, name
        self.entities[name] = Entity(name, table, key_column)

    def handles(self, cls: type, *event_names: str,
                prefetch: tuple[tuple[str, str], ...] = ()) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``cls``'s events named ``event_names``."""
        def register(handler: Handler) -> Handler:
            for event_name in event_names:
                self.add(topic_of(cls, event_name), handler, prefetch)
            return handler
        return register

    def add(self, topic: str, handler: Handler, prefetch: tuple[tuple[str, str], ...] = ()) -> None:
        for _attribute, entity_name in prefetch:
            assert entity_name in self.entities, f"register entity {entity_name!r} before its handlers"
        registrations = self.by_topic.setdefault(topic, [])
        if any(r.handler is handler for r in registrations):
            return  # a module imported twice registers once
        registrations.append(Registration(topic, handler, prefetch))

    def fast_path(self, cls: type, event_name: str, *, replaces: tuple[Handler, ...],
                  parse: Callable[[Any, dict[str, Any]], Any] | None = None,
                  write: Callable[..., bool] | None = None) -> Callable[[Callable[..., bool]], Callable[..., bool]]:
        """Register the decorated builder as the rebuild's fast path for ``cls``'s ``event_name``."""
        def register(builder: Callable[..., bool]) -> Callable[..., bool]:
            topic = topic_of(cls, event_name)
            self.fast_paths[topic] = FastPath(topic, builder, tuple(replaces), parse, write)
            return builder
        return register

    def fast_path_for(self, topic: str) -> FastPath | None:
        """The topic's fast path, if it still replaces exactly the topic's handlers."""
        fast = self.fast_paths.get(topic)
        if fast is None or tuple(r.handler for r in self.handlers_for(topic)) != fast.replaces:
            return None
        return fast

    def finalizer(self, function: Callable[[Any], None]) -> Callable[[Any], None]:
        """Register ``function(batch)``, run once per page after its events, before the flush."""
        if function not in self.finalizers:
            self.finalizers.append(function)
        return function

    def handlers_for(self, topic: str) -> list[Registration]:
        return self.by_topic.get(topic, [])


REGISTRY = Registry()
