"""``gjj projections|statement|audit`` end to end through the real entry point (Typer's runner).

The data is written with the ledger's own services; the commands under test open their own
ledger on the same store, as an operator would. A stored event edited with SQL must make
``audit verify`` exit non-zero naming the position and the kind (AUD-1); ``audit check``
must pass on a clean store and fail once a read row disagrees with the events (GL-2).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pymupdf
import pytest
from typer.testing import CliRunner

import ledger.cli_reports  # noqa: F401  (registers the projections, statement and audit commands)
from ledger.cli import app
from ledger.storage import parse_database_url

runner = CliRunner()


def gjj(url: str, *args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, ["--db", url, *args])
    payload = None
    if "--json" in args and result.stdout.strip().startswith(("{", "[")):
        payload = json.loads(result.stdout)
    return result.exit_code, payload, result.stdout + (result.stderr or "")


@pytest.fixture
def centre(fund: Any, store_url: str) -> dict[str, Any]:
    fund.on(date(2024, 6, 3))
    employer = fund.employer()
    (id_a, a), (_id_b, b) = fund.member(employer), fund.member(employer)
    for month in (6, 7, 8):
        fund.on(date(2024, month, 8))
        fund.remit(employer, f"2024-{month:02d}", [a, b])
    fund.on(date(2024, 8, 20))
    fund.withdraw(a, "500.00", value_date=date(2024, 8, 20))
    return {"url": store_url, "a": a, "b": b, "id_a": id_a}


def edit_stored_event(url: str, position: int, old: bytes, new: bytes) -> None:
    """What an attacker with database access would do: change an event's stored state in place."""
    config = parse_database_url(url)
    if config.engine == "sqlite":
        with sqlite3.connect(config.sqlite_path) as connection:
            state = connection.execute("SELECT state FROM stored_events WHERE rowid = ?", (position,)).fetchone()[0]
            assert old in state
            connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                               (state.replace(old, new), position))
        return
    with psycopg.connect(config.psycopg_conninfo(), autocommit=True) as connection:
        table = f'"{config.schema}".ledger_events'
        state = connection.execute(f"SELECT state FROM {table} WHERE notification_id = %s", (position,)).fetchone()[0]
        assert old in bytes(state)
        connection.execute(f"UPDATE {table} SET state = %s WHERE notification_id = %s",
                           (bytes(state).replace(old, new), position))


def contributed_position(fund: Any) -> int:
    return next(n.id for n in fund.ledger.iter_notifications() if n.topic.endswith("FundAccount.Contributed"))


# -- audit ----------------------------------------------------------------------------------------
@pytest.mark.storage
def test_audit_verify_names_the_position_of_an_edited_event(fund, centre):
    code, report, text = gjj(centre["url"], "audit", "verify", "--json")
    assert code == 0 and report["ok"] is True, text
    position = contributed_position(fund)
    edit_stored_event(centre["url"], position, b'"933.24"', b'"999.24"')
    code, report, text = gjj(centre["url"], "audit", "verify", "--json")
    assert code == 4, text
    assert report["ok"] is False
    assert (report["first_problem"]["position"], report["first_problem"]["kind"]) == (position, "edited")
    assert f"first bad position {position}: edited" in text


@pytest.mark.storage
def test_audit_check_passes_on_a_clean_store_and_names_a_wrong_read_row(fund, centre):
    code, result, text = gjj(centre["url"], "audit", "check", "--json")
    assert code == 0, text
    assert result["ok"] and result["accounts"] == 2 and result["trial_balances_equal"]
    assert result["sum_of_balances_from_events"] == result["journal_2001_from_read_model"] == "10698.88"
    config = parse_database_url(centre["url"])
    statement = "UPDATE rm_accounts SET balance_fen = balance_fen + 1 WHERE account_no = '%s'" % centre["b"]
    if config.engine == "sqlite":
        with sqlite3.connect(config.sqlite_path) as connection:
            connection.execute(statement)
    else:
        with psycopg.connect(config.psycopg_conninfo(), autocommit=True) as connection:
            connection.execute(f'SET search_path TO "{config.schema}"')
            connection.execute(statement)
    code, result, text = gjj(centre["url"], "audit", "check", "--json")
    assert code == 4, text
    assert result["mismatches"] == [{"account_no": centre["b"], "events": "5599.44", "read_model": "5599.45",
                                     "read_model_lines": "5599.44"}]


def test_audit_replay_to_a_version_a_value_date_and_a_recorded_time(fund, centre):
    url, account = centre["url"], centre["a"]
    code, early, text = gjj(url, "audit", "replay", account, "--version", "3", "--json")
    assert code == 0, text
    assert (early["type"], early["version"], len(early["state"]["movements"])) == ("FundAccount", 3, 1)
    code, dated, _ = gjj(url, "audit", "replay", account, "--as-of", "2024-07-31", "--json")
    assert (dated["balance_as_of"], len(dated["movements_as_of"])) == ("3732.96", 2)
    code, known, _ = gjj(url, "audit", "replay", account, "--known-at", "2024-08-08T12:00:00", "--json")
    assert code == 0 and len(known["state"]["movements"]) == 3
    code, _, text = gjj(url, "audit", "replay", account, "--known-at", "2024-01-01T00:00:00", "--json")
    assert code == 3 and '"field": "known_at"' in text
    code, _, text = gjj(url, "audit", "replay", "no-such-thing", "--json")
    assert code == 3 and '"field": "aggregate_id"' in text


# -- projections and statements ------------------------------------------------------------------------
def test_projection_commands_rebuild_to_the_same_digest(centre):
    url = centre["url"]
    code, caught, text = gjj(url, "projections", "catch-up", "--json")
    assert code == 0 and caught["events_read"] > 0, text
    code, first, _ = gjj(url, "projections", "digest", "--json")
    code, rebuilt, text = gjj(url, "projections", "rebuild", "--json")
    assert code == 0 and rebuilt["digest"] == first["digest"] and first["lag"] == 0
    assert "rebuilding" in text and f"{rebuilt['position_to']}/{rebuilt['position_to']}" in text  # the bar, on stderr
    code, again, _ = gjj(url, "projections", "catch-up", "--json")
    assert again["events_read"] == 0


def test_statement_and_certificate_commands(centre, tmp_path: Path):
    url, account = centre["url"], centre["a"]
    pdf = tmp_path / "statement.pdf"
    code, statement, text = gjj(url, "statement", "account", account, "--from", "2024-07-01", "--to", "2024-08-31",
                                "--pdf", str(pdf), "--json")
    assert code == 0, text
    assert (statement["opening_balance"], statement["closing_balance"]) == ("1866.48", "5099.44")
    assert [line["kind_zh"] for line in statement["lines"]] == ["汇缴", "汇缴", "提取"]
    with pymupdf.open(pdf) as document:
        assert "个人账户明细" in document[0].get_text()
    certificate_pdf = tmp_path / "certificate.pdf"
    code, certificate, text = gjj(url, "statement", "certificate", centre["id_a"], "--as-of", "2024-08-31",
                                  "--pdf", str(certificate_pdf), "--json")
    assert code == 0, text
    assert (certificate["paid_up_to"], certificate["months_paid_total"], certificate["balance"]) == (
        "2024-08", 3, "5099.44")
    assert certificate_pdf.stat().st_size > 0
    saved = tmp_path / "certificate.json"
    saved.write_text(json.dumps(certificate, ensure_ascii=False), encoding="utf-8")
    code, verdict, text = gjj(url, "statement", "verify-certificate", str(saved), "--json")
    assert code == 0 and verdict["ok"], text
    saved.write_text(json.dumps({**certificate, "months_paid_total": 36}, ensure_ascii=False), encoding="utf-8")
    code, verdict, text = gjj(url, "statement", "verify-certificate", str(saved), "--json")
    assert code == 4 and verdict["ok"] is False and "verification_code" in verdict["reason"]


def test_refusals_name_the_field_and_exit_non_zero(centre):
    url = centre["url"]
    code, error, _ = gjj(url, "statement", "account", "0000000000000000", "--json")
    assert code == 3 and error["error"]["field"] == "account"
    code, error, _ = gjj(url, "statement", "account", centre["a"], "--from", "2024-09-01", "--to", "2024-08-01",
                         "--json")
    assert code == 2 and error["error"]["field"] == "date_from"
    code, _, text = gjj(url, "statement", "certificate", centre["id_a"], "--as-of", "2024-13-01", "--json")
    assert code == 2 and "as_of" in text
    code, error, _ = gjj(url, "statement", "certificate", centre["id_a"], "--as-of", "2024-01-01", "--json")
    assert code == 2 and error["error"]["field"] == "as_of"  # before the account opened


def test_repayment_statement_command(fund, store_url, tmp_path: Path):
    from tests.test_projections import loan_history

    loan_no = loan_history(fund)
    pdf = tmp_path / "repayment.pdf"
    code, statement, text = gjj(store_url, "statement", "repayment", loan_no, "--as-of", "2025-06-30",
                                "--pdf", str(pdf), "--json")
    assert code == 0, text
    assert (statement["loan_number"], statement["instalment_count"]) == (loan_no, 360)
    first = statement["instalments"][0]
    assert (first["paid_interest"], first["paid_principal"], first["from_card"]) == ("1187.50", "880.29", "2067.79")
    fourth = statement["instalments"][3]  # due 2025-05-15, paid 2025-05-25: ten days late with its penalty
    assert fourth["days_overdue"] == 10 and fourth["penalty"] != "0.00"
    with pymupdf.open(pdf) as document:
        assert "还款明细" in document[0].get_text()
    code, error, _ = gjj(store_url, "statement", "repayment", "NO-SUCH-LOAN", "--json")
    assert code == 3 and error["error"]["field"] == "loan"


def test_audit_check_agrees_after_an_interest_adjustment_for_a_backdated_receipt(fund, store_url):
    """The read models follow InterestAdjusted (COR-3 for a posting dated into a settled year)."""
    fund.on(date(2024, 7, 1))
    employer = fund.employer(ratio="12", from_period="2024-01")
    _, account = fund.member(employer, from_period="2024-01")
    fund.remit(employer, "2024-07", [account])
    fund.on(date(2025, 7, 1))
    fund.ledger.settle_interest(date(2025, 6, 30))
    document = fund.register(employer, "2025-06", [account])
    fund.on(date(2025, 7, 3))
    fund.pay(document["total"], document["serial"], value_date=date(2025, 6, 28))
    assert fund.ledger.history(account)["lines"][-1]["kind"] == "interest-adjustment"
    code, result, text = gjj(store_url, "audit", "check", "--json")
    assert code == 0 and result["ok"], text
    code, first, _ = gjj(store_url, "projections", "digest", "--json")
    assert gjj(store_url, "projections", "rebuild", "--json")[0] == 0
    assert gjj(store_url, "projections", "digest", "--json")[1] == first
