"""Benchmark: repayments posted by a bank over the HTTP API (BNK-1); postings/s and p50/p99 latency.

For each store (SQLite, PostgreSQL) it seeds a centre with ``--loans`` disbursed loans serviced by ICBC,
starts ``uvicorn`` on 127.0.0.1 (loopback only) in a child process over that store, posts ``--count``
repayments of 1.00 round-robin over the loans with ``--concurrency`` requests in flight, and
stops by itself at the count or at ``--seconds``, whichever comes first. The load comes from
``--concurrency`` raw asyncio HTTP/1.1 keep-alive connections (honest HTTP over loopback, ~3 % of a CPU at
500 requests/s) rather than httpx, whose async client took ~0.7 of one of this machine's two CPUs; both
the server's and the client's CPU shares are printed, with the load average before and after, and the
raw append rate of the same store measured after the load (``benchmarks.common``). Each posting is one atomic save
(loan payment + idempotency record + audit chain), a burst of them in one transaction (the API's group
commit, ``ledger/api_batcher.py``). Target (issue 14): ≥ 500 postings/s with p99 ≤ 100 ms, 32 in flight.

Usage: python -m benchmarks.api_load [--count 100000] [--seconds 240] [--loans 200] [--concurrency 32]
       [--stores sqlite,postgresql] [--workers 1] [--client raw|httpx] [--server-options '...'] [--json]
       [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also run as a file, as the other benchmarks

from benchmarks.common import RAW_BATCH_SIZE, emit, load_average  # noqa: E402
from ledger.app import Ledger  # noqa: E402
from ledger.application import CHINA_TZ, FixedClock  # noqa: E402
from ledger.money import Money  # noqa: E402
from ledger.sampledata import credit_code, resident_id  # noqa: E402
from ledger.services.banking import with_banking  # noqa: E402
from ledger.services.contributions import RemittanceLine  # noqa: E402
from ledger.storage import drop_postgres_schema, parse_database_url  # noqa: E402

BANK, KEY = "ICBC", "bench-icbc-key"
CENTRE_ACCOUNT = "3100000001"
POST_DAY = date(2025, 2, 17)
HOST = "127.0.0.1"
COUNT_MAX = 1_000_000
SECONDS_MAX = 290
CONCURRENCY_MAX = 512
SERVER_START_SECONDS_MAX = 60
REQUEST_TIMEOUT_SECONDS = 30
TARGET_POSTINGS_PER_SECOND = 500  # issue 14: 32 in flight on loopback
TARGET_P99_MS = 100
RAW_EVENTS_MAX = 200_000


# -- seeding -------------------------------------------------------------------------------------------------
def seed(url: str, loans: int) -> list[str]:
    """``loans`` members with six months credited, each with a 100,000.00 loan disbursed 2025-01-15."""
    clock = FixedClock(datetime(2024, 6, 1, 10, tzinfo=CHINA_TZ))
    ledger = with_banking(Ledger)(url, clock=clock)
    try:
        employer = credit_code(7001)
        ledger.open_employer(employer, "压测单位", "6222000011112222", date(2024, 6, 1), ratio="12")
        numbers = [resident_id(date(1985 + i % 10, 1 + i % 12, 1 + i % 28), i, i % 2 == 0) for i in range(loans)]
        ledger.open_members_bulk([{"id_number": n, "name": f"借款人{i}", "employer": employer, "base": "10000.00",
                                   "from_period": "2024-06"} for i, n in enumerate(numbers)], date(2024, 6, 1))
        accounts = [ledger.member(n).account_no for n in numbers]
        _remit(ledger, clock, employer, accounts)
        return [_lend(ledger, clock, number) for number in numbers]
    finally:
        ledger.close()


def _remit(ledger: Any, clock: FixedClock, employer: str, accounts: list[str]) -> None:
    for month in range(6, 13):
        period, day = f"2024-{month:02d}", date(2024, month, 5)
        clock.set_day(day, 10)
        lines = [RemittanceLine(i + 1, a, Money("10000.00"), Money("1200.00"), Money("1200.00"))
                 for i, a in enumerate(accounts)]
        document = ledger.register_remittance(employer, period, "remittance", f"B{period}", lines, day)
        ledger.receive(BANK, f"{day:%Y%m%d}", f"SEED{period}", CENTRE_ACCOUNT, document["total"], day,
                       document["serial"])


def _lend(ledger: Any, clock: FixedClock, number: str) -> str:
    clock.set_day(date(2025, 1, 10), 10)
    loan_no = ledger.apply_for_loan(number, "100000.00", 120, "equal-instalment", "500000.00", "20000.00",
                                    date(2025, 1, 10), BANK)["loan_no"]
    ledger.approve_loan(loan_no, date(2025, 1, 12))
    clock.set_day(date(2025, 1, 15), 10)
    ledger.disburse_loan(loan_no, date(2025, 1, 15))
    return loan_no


# -- the server (child process) ------------------------------------------------------------------------------------
def bench_app() -> Any:
    """uvicorn factory: the API over ``GJJ_DATABASE_URL`` with the clock fixed on the posting day."""
    from ledger.api import create_app

    clock = FixedClock(datetime(POST_DAY.year, POST_DAY.month, POST_DAY.day, 18, tzinfo=CHINA_TZ))
    return create_app(lambda: with_banking(Ledger)(os.environ["GJJ_DATABASE_URL"], clock=clock), {KEY: BANK})


def start_server(url: str, port: int, workers: int, options: str = "") -> subprocess.Popen:
    env = {**os.environ, "GJJ_DATABASE_URL": url}
    command = [sys.executable, "-m", "uvicorn", "benchmarks.api_load:bench_app", "--factory", "--host", HOST,
               "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log",
               *options.split()]
    server = subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + SERVER_START_SECONDS_MAX
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/openapi.json", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# -- the load ---------------------------------------------------------------------------------------------------
def request_bytes(port: int, body: dict[str, Any]) -> bytes:
    """One honest HTTP/1.1 request (keep-alive) as the raw client sends it."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (f"POST /v1/repayments HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-Bank-Key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
    return head.encode("latin-1") + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length (what uvicorn sends for JSON)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding":
            raise RuntimeError(f"the raw client reads Content-Length bodies only, got {line!r}")
    if length is None:
        raise RuntimeError("a response without Content-Length")
    return status, await reader.readexactly(length)


def posting(loans: list[str], index: int, order: str = "round-robin") -> dict[str, Any]:
    """The ``index``-th posting: round-robin over the loans (every loan reaches its snapshot interval in the
    same round: snapshot-heavy rounds), or a loan drawn at random (seeded by the index: the same every run)."""
    loan_no = loans[index % len(loans)] if order == "round-robin" else random.Random(index).choice(loans)
    return {"loan_no": loan_no, "amount": "1.00", "host_date": f"{POST_DAY:%Y%m%d}",
            "bank_reference": f"BENCH{index:09d}"}


async def post_all(port: int, loans: list[str], count: int, seconds: float, concurrency: int,
                   client: str = "raw", order: str = "round-robin") -> dict[str, Any]:
    """``concurrency`` keep-alive connections, each with one request in flight at a time."""
    latencies_ms: list[float] = []
    statuses: dict[int, int] = {}
    next_index = iter(range(count))
    deadline = time.perf_counter() + seconds
    cpu_began = time.process_time()

    async def raw_worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for index in next_index:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                writer.write(request_bytes(port, posting(loans, index, order)))
                status, _body = await asyncio.wait_for(read_response(reader), REQUEST_TIMEOUT_SECONDS)
                latencies_ms.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    if client == "raw":
        began = time.perf_counter()
        await asyncio.gather(*(raw_worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", headers={"X-Bank-Key": KEY}, limits=limits,
                                     timeout=REQUEST_TIMEOUT_SECONDS) as http:
            async def httpx_worker() -> None:
                for index in next_index:
                    if time.perf_counter() > deadline:
                        return
                    started = time.perf_counter()
                    response = await http.post("/v1/repayments", json=posting(loans, index, order))
                    latencies_ms.append((time.perf_counter() - started) * 1000)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            began = time.perf_counter()
            await asyncio.gather(*(httpx_worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - began
    result = summarise(latencies_ms, statuses, elapsed)
    result["client_cpu_share"] = round((time.process_time() - cpu_began) / elapsed, 2) if elapsed else 0.0
    return result


def summarise(latencies_ms: list[float], statuses: dict[int, int], elapsed: float) -> dict[str, Any]:
    ordered = sorted(latencies_ms) or [0.0]
    posted = statuses.get(201, 0)
    return {"requests": len(latencies_ms), "postings": posted, "seconds": round(elapsed, 1),
            "postings_per_second": round(posted / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(statistics.median(ordered), 1), "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
            "statuses": statuses}


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (uvicorn's workers), from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    wanted = {pid}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) in wanted or int(fields[1]) in wanted:  # fields[1] is the parent's pid
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


# -- one store -------------------------------------------------------------------------------------------------------
def store_url(store: str, postgres: str, folder: Path) -> str:
    if store == "sqlite":
        return f"sqlite:///{folder}/api-load.sqlite3"
    separator = "&" if "?" in postgres else "?"
    return f"{postgres}{separator}schema=bench_{uuid.uuid4().hex[:12]}"


def raw_rates(url: str, count: int) -> dict[str, float]:
    """The raw append rate of the same store in the same run (benchmarks.common), after the load."""
    from benchmarks.common import raw_append_rates

    clock = FixedClock(datetime(POST_DAY.year, POST_DAY.month, POST_DAY.day, 19, tzinfo=CHINA_TZ))
    ledger = with_banking(Ledger)(url, clock=clock)
    try:
        return {name: round(rate, 1) for name, rate in raw_append_rates(ledger, count).items()}
    finally:
        ledger.close()


def run_store(store: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    url = store_url(store, args.postgres, folder)
    try:
        began = time.perf_counter()
        loans = seed(url, args.loans)
        seeded = time.perf_counter() - began
        port = free_port()
        server = start_server(url, port, args.workers, args.server_options)
        load_before = load_average()
        try:
            server_cpu = process_tree_cpu_seconds(server.pid)
            result = asyncio.run(post_all(port, loans, args.count, args.seconds, args.concurrency, args.client,
                                       args.order))
            server_cpu = process_tree_cpu_seconds(server.pid) - server_cpu
        finally:
            server.terminate()
            server.wait(timeout=30)
        result["server_cpu_share"] = round(server_cpu / result["seconds"], 2) if result["seconds"] else 0.0
        result["load_average_before"] = load_before
        result["load_average_after"] = load_average()
        return {"store": store, "loans": len(loans), "seed_seconds": round(seeded, 1), **result,
                **raw_rates(url, args.raw_events)}
    finally:
        if store == "postgresql":
            drop_postgres_schema(parse_database_url(url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--loans", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw: asyncio HTTP/1.1 keep-alive connections (light); httpx: httpx.AsyncClient")
    parser.add_argument("--order", choices=("round-robin", "random"), default="round-robin",
                        help="which loan each posting pays: in turn, or drawn at random (seeded)")
    parser.add_argument("--server-options", default="",
                        help="extra uvicorn options, e.g. '--http httptools --loop uvloop'")
    parser.add_argument("--raw-events", type=int, default=10_000, help="events for the raw append rate")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last line")
    parser.add_argument("--postgres", default=os.environ.get("GJJ_TEST_POSTGRES_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    args.count = max(1, min(args.count, COUNT_MAX))
    args.seconds = max(1.0, min(args.seconds, SECONDS_MAX))
    args.concurrency = max(1, min(args.concurrency, CONCURRENCY_MAX))
    args.raw_events = max(RAW_BATCH_SIZE, min(args.raw_events, RAW_EVENTS_MAX))
    folder = Path(tempfile.mkdtemp(prefix="gjj-api-load-"))
    print(f"target: >= {TARGET_POSTINGS_PER_SECOND} postings/s, p99 <= {TARGET_P99_MS} ms; "
          f"count {args.count}, at most {args.seconds:.0f} s per store, {args.concurrency} in flight, "
          f"{args.workers} worker(s), {args.client} client, {os.cpu_count()} CPUs", flush=True)
    figures: dict[str, Any] = {"concurrency": args.concurrency, "workers": args.workers, "client": args.client,
                               "order": args.order,
                               "loans": args.loans, "load_average_before": load_average()}
    for store in args.stores.split(","):
        result = run_store(store.strip(), args, folder)
        name = result["store"]
        met = result["postings_per_second"] >= TARGET_POSTINGS_PER_SECOND and result["p99_ms"] <= TARGET_P99_MS
        print(f"{name:<11} {result['postings']:>7} postings in {result['seconds']:>6} s = "
              f"{result['postings_per_second']:>7} postings/s  p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  "
              f"statuses {result['statuses']}  (seed {result['loans']} loans {result['seed_seconds']} s)  "
              f"{'target met' if met else 'target NOT met'}", flush=True)
        for key in ("postings_per_second", "p50_ms", "p99_ms", "postings", "server_cpu_share", "client_cpu_share",
                    "load_average_before", "load_average_after", "raw_events_per_s", "raw_chained_events_per_s"):
            figures[f"{name}_{key}"] = result[key]
        figures[f"{name}_target_met"] = met
    figures["load_average"] = load_average()
    emit(figures, args.json)


if __name__ == "__main__":
    main()
