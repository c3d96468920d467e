"""Helpers for the input tests of issue 16: what a refusal must leave byte-identical, and the read side
that must still work after any input.

``store_fingerprint`` digests every stored event (position, aggregate, version, topic and the state
bytes) with the audit chain's head: equal fingerprints mean not one event, balance, document or chain
link changed. ``assert_read_side_sound`` runs ``projections catch-up``, ``audit verify``, ``audit check``
and ``books check`` through the real ``gjj`` entry point, as an operator would after an incident.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime
from typing import Any, Callable

import pytest
from typer.testing import CliRunner

import ledger.cli_reports  # noqa: F401  (registers the projections, statement and audit commands)
from ledger.app import Ledger
from ledger.application import CHINA_TZ, Clock
from ledger.cli import app

runner = CliRunner()
NOTIFICATION_PAGE = 10_000
READ_SIDE_COMMANDS = (("projections", "catch-up", "--json"), ("audit", "verify", "--json"),
                      ("audit", "check", "--json"), ("books", "check", "--json"))
REFUSAL_LINE = re.compile(r"^error: (?P<field>[^:\n]+): .+ \[(?P<rule>[A-Z][A-Z0-9-]*)\]$", re.MULTILINE)


def gjj(url: str, *args: str) -> tuple[int, Any, str]:
    """Run ``gjj --db url args``; the JSON payload if ``--json`` printed one, and all output."""
    result = runner.invoke(app, ["--db", url, *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"gjj {args} raised {result.exception!r}") from result.exception
    payload = None
    if "--json" in args and result.stdout.strip().startswith(("{", "[")):
        payload = json.loads(result.stdout)
    return result.exit_code, payload, result.stdout + (result.stderr or "")


def assert_refused(url: str, field: str, rule: str, *args: str) -> dict[str, Any]:
    """``gjj args --json`` exits 2 naming ``field`` and ``rule`` (JSON and ``field: message [RULE]``) and
    leaves the store byte-identical."""
    before = store_fingerprint(url)
    code, payload, output = gjj(url, *args, "--json")
    assert code == 2, output
    assert payload is not None, output
    error = payload["error"]
    assert (error["field"], error["rule"]) == (field, rule), error
    line = REFUSAL_LINE.search(output)
    assert line is not None and (line["field"], line["rule"]) == (field, rule), output
    assert store_fingerprint(url) == before, f"{args} changed the store"
    return error


def store_fingerprint(url: str) -> tuple[Any, ...]:
    """Every stored event digested, the global notification head and the audit chain head."""
    reader = Ledger(url)
    try:
        digest, position, count = hashlib.sha256(), 1, 0
        while True:
            page = reader.recorder.select_notifications(position, NOTIFICATION_PAGE)
            if not page:
                break
            for item in page:
                digest.update(f"{item.id}|{item.originator_id}|{item.originator_version}|{item.topic}|".encode())
                digest.update(bytes(item.state))
                count += 1
            position = page[-1].id + 1
        head = reader.audit.head()
        return reader.recorder.max_notification_id(), count, digest.hexdigest(), head.position, head.hash
    finally:
        reader.close()


def assert_read_side_sound(url: str) -> None:
    """Catch-up, audit verify, audit check and books check all succeed on the store."""
    for args in READ_SIDE_COMMANDS:
        code, payload, output = gjj(url, *args)
        assert code == 0, f"gjj {' '.join(args)}: {output}"
        if isinstance(payload, dict) and "ok" in payload:
            assert payload["ok"] is True, payload


def pin_wall_clock(monkeypatch: pytest.MonkeyPatch, day: date, hour: int = 10) -> Callable[[date], None]:
    """The entry points' wall clock (``ledger.application.Clock``) says ``day``; returns a setter."""
    now = {"at": datetime(day.year, day.month, day.day, hour, tzinfo=CHINA_TZ)}
    monkeypatch.setattr(Clock, "now", lambda self: now["at"])

    def set_day(other: date) -> None:
        now["at"] = datetime(other.year, other.month, other.day, hour, tzinfo=CHINA_TZ)
    return set_day
