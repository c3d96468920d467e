"""What every benchmark prints beside its own figure (issue 14): the store's raw append rate in the same run,
without the audit chain (the ratio's denominator) and with it, the load average, the peak RSS, and, with
``--json``, one JSON object with all figures as the last line of the output.

The raw rate saves batches of ``RAW_BATCH_SIZE`` one-event aggregates of a few fields: what the store can
append when the ledger does no work. Without the chain it runs inside ``audit_bulk_load`` with the chain
extended afterwards, outside the timing (the eventsourcing recorder alone); with it, every batch is chained
in its own transaction as every save of the ledger is.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

from eventsourcing.domain import event

from ledger.aggregates.base import LedgerAggregate, recording
from ledger.money import Money

RAW_BATCH_SIZE = 1000


class Trivial(LedgerAggregate):
    """One event, a few fields: what the store can append when the ledger does no work."""

    @event("Made")
    def __init__(self, number: int, amount: Money):
        self.number = number
        self.amount = amount


def raw_append_rates(ledger: Any, count: int) -> dict[str, float]:
    """events/s of ``save`` in batches, without the audit chain and with it (same store, same run)."""
    rates = {}
    for chained in (False, True):
        elapsed = 0.0
        previous = ledger.audit_extend_on_save
        ledger.audit_extend_on_save = chained
        try:
            for start in range(0, count, RAW_BATCH_SIZE):
                with recording(ledger.clock.now()):
                    made = [Trivial(number=n, amount=Money("1.00")) for n in range(start, min(count, start + RAW_BATCH_SIZE))]
                begun = time.perf_counter()
                ledger.save(*made)
                elapsed += time.perf_counter() - begun
        finally:
            ledger.audit_extend_on_save = previous
        if not chained:
            ledger.audit.extend()  # the unchained rows joined the chain: the chained run may follow
        rates["raw_events_per_s" if not chained else "raw_chained_events_per_s"] = count / elapsed
    return rates


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, all cores (``/proc/stat``)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def machine_busy(before: tuple[int, int], after: tuple[int, int]) -> dict[str, float]:
    """How busy the machine's cores were between two ``machine_ticks()``: the fraction of all cores
    (1.0: every core busy the whole time, whoever used them) and the number of cores — the evidence
    for a figure limited by the machine rather than by the design."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return {"machine_cores": os.cpu_count() or 1, "machine_busy": busy / total if total else 0.0}


def process_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load_average() -> float:
    return os.getloadavg()[0]


def emit(figures: dict[str, Any], as_json: bool) -> None:
    """The figures, one per line; with ``--json`` one JSON object as the very last line."""
    for name, value in figures.items():
        print(f"  {name}: {value:,.2f}" if isinstance(value, float) else f"  {name}: {value}")
    if as_json:
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in figures.items()},
                         ensure_ascii=False, sort_keys=True))
