"""Benchmark: seed a centre, rebuild the read models (ADR 0008), then print statements; print figures.

The store is seeded month by month through the ledger's public services with a fixed clock,
on SQLite or PostgreSQL: every employer's remittance and its bank receipt, a few withdrawals
and their payouts, interest each 30 June (any store that already holds events is used as it
is, e.g. one ``gjj demo`` built). Then: a full rebuild (events/s,
target ≥ 50,000/s), a second rebuild that must give the same digest, a no-op catch-up, and
account statements built from the read side as JSON and as PDF (statements/s).

The rebuild reads the log with the driver's cursor, decodes with orjson, takes the topic fast
paths and writes into shadow tables swapped in at the end (``ledger.projections.rebuild``).

Usage: python benchmarks/projection_rebuild.py [--members 2000] [--months 24] [--db URL]
       [--keep PATH]   (a SQLite file: seeded once, reused by later runs)
       [--page-size N] (catch-up pages) [--rebuild-page-size N] (rebuild pages)
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock
from ledger.money import Money
from ledger.projections import Projector, ReadModel
from ledger.projections.tables import accounts as accounts_table
from ledger.reports import account_statement_to_json, render_account_statement_pdf
from ledger.sampledata import credit_code, resident_id
from ledger.services.accounts import derive_account_no, share
from ledger.services.contributions import RemittanceLine
from ledger.statements import account_statement

EMPLOYERS = 12
START = date(2024, 7, 1)
RATIO = "12"
WITHDRAWALS_PER_MILLE = 5
STATEMENTS_JSON = 500
STATEMENTS_PDF = 100


def month_start(index: int) -> date:
    total = START.year * 12 + START.month - 1 + index
    return date(total // 12, total % 12 + 1, 1)


def open_centre(ledger: Ledger, members: int) -> dict[str, list[tuple[str, str]]]:
    """Employers with ratio 12 %, members with varied bases; returns employer → [(account, base)]."""
    staff: dict[str, list[tuple[str, str]]] = {}
    employers = [credit_code(7000 + i) for i in range(EMPLOYERS)]
    for code in employers:
        ledger.open_employer(code, f"基准单位{code[-4:]}", "6222000000000000", START, ratio=RATIO)
        staff[code] = []
    rows = []
    for index in range(members):
        number = resident_id(date(1970 + index % 30, 1 + index % 12, 1 + index % 28), index // 360, index % 2 == 0)
        base = f"{3000 + index * 37 % 20000}.00"
        employer = employers[index % EMPLOYERS]
        rows.append({"id_number": number, "name": f"职工{index}", "employer": employer, "base": base,
                     "from_period": START.strftime("%Y-%m")})
        staff[employer].append((derive_account_no(number), base))
    ledger.open_members_bulk(rows, START)
    return staff


def run_month(ledger: Ledger, clock: FixedClock, staff: dict[str, list[tuple[str, str]]], month: date) -> None:
    """Every employer's remittance (汇缴) and its money; a few withdrawals paid out; interest each July."""
    period = month.strftime("%Y-%m")
    if month.month == 7 and month > START:
        clock.set_day(month, hour=2)
        ledger.settle_interest(date(month.year, 6, 30))
    for employer, people in staff.items():
        clock.set_day(month.replace(day=5))
        lines = [RemittanceLine(i + 1, account, Money(base), share(Money(base), Decimal(RATIO), "fen"),
                                share(Money(base), Decimal(RATIO), "fen")) for i, (account, base) in enumerate(people)]
        document = ledger.register_remittance(employer, period, "remittance", f"HJ{period}", lines,
                                              month.replace(day=5))
        clock.set_day(month.replace(day=8))
        ledger.receive("ICBC", f"{month:%Y%m}08", f"R{period}{employer[-6:]}", ledger.centre_bank_account,
                       document["total"], month.replace(day=8), document["serial"])
    clock.set_day(month.replace(day=20))
    everyone = [account for people in staff.values() for account, _ in people]
    for account in everyone[month.month::1000 // WITHDRAWALS_PER_MILLE]:
        result = ledger.withdraw(account, "other", "500.00", month.replace(day=20), {"purpose": "基准"},
                                 f"bench-{account}-{period}")
        ledger.settle_payout(result["serial"], True, month.replace(day=20), f"ICBC/{period}/{account}")


def seed(url: str, members: int, months: int) -> tuple[int, float]:
    """Returns (events stored, seconds); a store that already holds events is used as it is."""
    clock = FixedClock(datetime(START.year, START.month, START.day, 9, tzinfo=CHINA_TZ))
    ledger = Ledger(url, clock=clock, env={"AGGREGATE_CACHE_MAXSIZE": str(members * 2 + 100)})
    existing = ledger.recorder.max_notification_id() or 0
    if existing:
        ledger.close()
        return existing, 0.0
    started = time.perf_counter()
    with ledger.audit_bulk_load():
        staff = open_centre(ledger, members)
        for index in range(months):
            run_month(ledger, clock, staff, month_start(index))
    events = ledger.recorder.max_notification_id()
    ledger.close()
    return events, time.perf_counter() - started


def time_statements(read: ReadModel, accounts: list[dict[str, Any]], centre: str, pdf: bool) -> float:
    """Statements per second over the accounts given (the whole history of each)."""
    started = time.perf_counter()
    for account in accounts:
        statement = account_statement(read, account["account_no"], account["opened_on"], date(2030, 12, 31),
                                      issued_on=date(2030, 12, 31), centre_name=centre)
        if pdf:
            render_account_statement_pdf(statement)
        else:
            json.dumps(account_statement_to_json(statement), ensure_ascii=False)
    return len(accounts) / (time.perf_counter() - started)


def log_read_rates(ledger: Ledger) -> tuple[float, float]:
    """This machine's ceiling, as STACK-NOTES measures it (~330k events/s raw, ~155k/s decoded on its
    machine): page the notification log 1,000 at a time, raw and decoded to domain events."""
    rates = []
    for decode in (False, True):
        started, position, count = time.perf_counter(), 1, 0
        while True:
            page = ledger.recorder.select_notifications(position, 1000)
            if not page:
                break
            if decode:
                for notification in page:
                    ledger.mapper.to_domain_event(notification)
            count += len(page)
            position = page[-1].id + 1
        rates.append(count / (time.perf_counter() - started))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--db", default=None, help="sqlite:///file or postgresql://...?schema=...")
    parser.add_argument("--keep", default=None, help="a SQLite file to seed once and reuse")
    parser.add_argument("--page-size", type=int, default=None)
    parser.add_argument("--rebuild-page-size", type=int, default=None)
    args = parser.parse_args()
    url = args.db or f"sqlite:///{args.keep or Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    events, seeded = seed(url, args.members, args.months)
    ledger = Ledger(url)
    options = {"page_size": args.page_size} if args.page_size else {}
    if args.rebuild_page_size:
        options["rebuild_page_size"] = args.rebuild_page_size
    projector = Projector.for_ledger(ledger, **options)
    first = projector.rebuild()
    digest = projector.digest()
    second = projector.rebuild()
    assert projector.digest() == digest, "a rebuild of the same events gave other read tables"
    noop = projector.catch_up()
    read = ReadModel(projector.engine)
    with projector.engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(select(accounts_table.c.account_no, accounts_table.c.opened_on)
                                                    .order_by(accounts_table.c.account_no)).mappings()]
    centre = ledger.policy.centre_name
    json_rate = time_statements(read, rows[:STATEMENTS_JSON], centre, pdf=False)
    pdf_rate = time_statements(read, rows[:STATEMENTS_PDF], centre, pdf=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"engine={ledger.storage.engine} members={args.members} months={args.months} events={events} "
          f"seed={seeded:.1f}s")
    print(f"rebuild: {first.seconds:.2f}s = {first.events_per_second:,.0f} events/s "
          f"(again {second.seconds:.2f}s = {second.events_per_second:,.0f} events/s; digest equal) "
          f"pages={first.pages} decoded={first.events_decoded} no-op catch-up {noop.seconds * 1000:.0f}ms")
    raw, decoded = log_read_rates(ledger)
    print(f"log read on this machine: raw {raw:,.0f} events/s, decoded {decoded:,.0f} events/s "
          f"(STACK-NOTES' machine: ~330k / ~155k); rebuild / raw read = {first.events_per_second / raw:.2f}")
    print(f"tables: {projector.table_counts()}")
    print(f"statements: JSON {json_rate:,.0f}/s over {min(len(rows), STATEMENTS_JSON)} accounts, "
          f"PDF {pdf_rate:,.1f}/s over {min(len(rows), STATEMENTS_PDF)} accounts; peak_rss={rss:.0f}MiB")
    projector.close()
    ledger.close()


if __name__ == "__main__":
    main()
