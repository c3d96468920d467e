"""Read models (CQRS read side, ADR 0008): tables derived from the event store, in its own database.

:class:`Projector` pages the notification log into the ``rm_*`` tables (a page and its tracked
position per transaction); :class:`ReadModel` answers balances, histories, states and the
trial balance as of any value date and as known at any recorded time (MNY-4). Handlers are
registered per event topic in :data:`REGISTRY`; importing this package registers the fund
side (``fund``) and the loan side (``loans``).
"""

from ledger.projections import fund as _fund  # noqa: F401  (registers the fund-side handlers)
from ledger.projections import loans as _loans  # noqa: F401  (registers the loan-side handlers and finalizer)
from ledger.projections.projector import PAGE_SIZE_DEFAULT, CatchUp, Projector, make_engine
from ledger.projections.queries import AccountLine, ReadModel
from ledger.projections.registry import REGISTRY, EventMeta, ProjectionError, Registry

__all__ = [
    "PAGE_SIZE_DEFAULT",
    "REGISTRY",
    "AccountLine",
    "CatchUp",
    "EventMeta",
    "ProjectionError",
    "Projector",
    "ReadModel",
    "Registry",
    "make_engine",
]
