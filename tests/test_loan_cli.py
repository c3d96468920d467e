"""``gjj loan ...`` end to end through the real entry point (Typer's runner, SQLite).

The schedule is a pure calculation printed with ``--json``; the other commands run on a
centre prepared through the service layer. The CLI reads the wall clock for "today"
(MNY-2: only entry points do); these tests pin that clock to the worked loan's dates.
A refused command exits 2 (3 for a missing record), names the field and the rule in its
JSON and changes nothing.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.app import Ledger
from ledger.application import CHINA_TZ, Clock
from ledger.cli import app
from ledger.money import Money
from ledger.sampledata import resident_id

runner = CliRunner()
ROW_FIELDS = {"number", "due_on", "principal", "interest", "payment", "outstanding"}
WORKED = ["loan", "schedule", "--principal", "500000.00", "--months", "360", "--annual-rate", "2.85",
          "--disbursed-on", "2025-01-15", "--json"]


def gjj(url: str | None, *args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, (["--db", url] if url else []) + list(args))
    payload = None
    if "--json" in args and result.stdout.strip().startswith(("{", "[")):
        payload = json.loads(result.stdout)
    return result.exit_code, payload, result.stdout + (result.stderr or "")


def total(rows: list[dict[str, str]], column: str) -> Money:
    return Money.sum(Money(row[column]) for row in rows)


# -- gjj loan schedule (LN-3, LN-4) --------------------------------------------------------------------
def test_schedule_equal_instalment_json() -> None:
    code, rows, text = gjj(None, *WORKED)
    assert code == 0, text
    assert len(rows) == 360 and all(set(row) == ROW_FIELDS for row in rows)
    first, second, last = rows[0], rows[1], rows[-1]
    assert (first["number"], first["due_on"]) == (1, "2025-02-15")
    assert (first["principal"], first["interest"], first["payment"], first["outstanding"]) == (
        "880.29", "1187.50", "2067.79", "499119.71")
    assert (second["principal"], second["interest"], second["due_on"]) == ("882.38", "1185.41", "2025-03-15")
    assert (last["number"], last["due_on"], last["payment"], last["outstanding"]) == (
        360, "2055-01-15", "2066.10", "0.00")
    assert total(rows, "interest") == Money("244402.71")
    assert total(rows, "principal") == Money("500000.00")


def test_schedule_equal_principal_json() -> None:
    code, rows, text = gjj(None, *WORKED, "--method", "equal-principal")
    assert code == 0, text
    assert len(rows) == 360 and all(set(row) == ROW_FIELDS for row in rows)
    assert (rows[0]["principal"], rows[0]["interest"], rows[0]["payment"]) == ("1388.89", "1187.50", "2576.39")
    assert rows[-1]["outstanding"] == "0.00"
    assert total(rows, "interest") == Money("214343.57")
    assert total(rows, "principal") == Money("500000.00")
    # money is always a string with two decimals
    assert all(Decimal(row[c]).as_tuple().exponent == -2 for row in rows for c in ROW_FIELDS - {"number", "due_on"})


@pytest.mark.parametrize("option, value, field", [
    ("--months", "361", "months"),
    ("--months", "0", "months"),
    ("--annual-rate", "10.01", "annual_rate"),
    ("--annual-rate", "0", "annual_rate"),
    ("--annual-rate", "-2.85", "annual_rate"),
    ("--principal", "500000.001", "principal"),
    ("--principal", "-500000.00", "principal"),
    ("--principal", "abc", "principal"),
    ("--method", "balloon", "method"),
])
def test_schedule_bad_input_exits_2_naming_the_field(option: str, value: str, field: str) -> None:
    args = list(WORKED)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args[-1:-1] = [option, value]
    code, out, text = gjj(None, *args)
    assert code == 2, text
    assert out["error"]["field"] == field, out
    assert out["error"]["rule"], out


# -- a loan through the CLI -------------------------------------------------------------------------------
@pytest.fixture()
def centre(sqlite_url: str, sqlite_fund: Any) -> tuple[str, str, str]:
    """A couple credited 2024-06..2024-12 at base 30,000.00, built through the service layer."""
    fund = sqlite_fund
    with fund.ledger.audit_bulk_load():
        employer = fund.employer()
        borrower, borrower_account = fund.member(employer, base="30000.00")
        spouse, spouse_account = fund.member(employer, base="30000.00", birth_date=date(1991, 3, 3), male=False)
        fund.ledger.link_spouses(borrower, spouse, fund.today)
        for month in range(6, 13):
            fund.on(date(2024, month, 5))
            fund.remit(employer, f"2024-{month:02d}", [borrower_account, spouse_account])
    return sqlite_url, borrower, spouse


@pytest.fixture()
def wall_clock(monkeypatch: pytest.MonkeyPatch):
    """Pin the entry point's wall clock (ledger.application.Clock) to a day."""
    now = {"at": datetime(2025, 1, 10, 10, tzinfo=CHINA_TZ)}
    monkeypatch.setattr(Clock, "now", lambda self: now["at"])

    def set_day(day: date) -> None:
        now["at"] = datetime(day.year, day.month, day.day, 10, tzinfo=CHINA_TZ)
    return set_day


def loan_count(url: str) -> tuple[int, int]:
    ledger = Ledger(url)
    try:
        return len(ledger.loan_ids()), ledger.recorder.max_notification_id()
    finally:
        ledger.close()


def test_loan_lifecycle_through_the_cli(centre: Any, wall_clock: Any) -> None:
    url, borrower, _ = centre
    wall_clock(date(2025, 1, 10))
    code, applied, text = gjj(url, "loan", "apply", borrower, "--principal", "500000.00", "--months", "360",
                              "--price", "800000.00", "--monthly-income", "20000.00", "--bank", "ICBC", "--json")
    assert code == 0, text
    loan_no = applied["loan_no"]
    assert (applied["state"], applied["eligibility"]["instalment"]) == ("APPLIED", "2067.79")
    wall_clock(date(2025, 1, 12))
    assert gjj(url, "loan", "approve", loan_no, "--json")[1]["state"] == "APPROVED"
    wall_clock(date(2025, 1, 15))
    code, disbursed, text = gjj(url, "loan", "disburse", loan_no, "--json")
    assert code == 0, text
    assert (disbursed["annual_rate"], disbursed["instalment"], disbursed["first_due_on"]) == (
        "2.85", "2067.79", "2025-02-15")

    code, status, _ = gjj(url, "loan", "status", loan_no, "--as-of", "2025-02-25", "--json")
    assert (status["amount_due"], status["penalty_accrued"], status["days_past_due"]) == ("2070.25", "2.46", 10)
    code, report, _ = gjj(url, "loan", "delinquent", "--as-of", "2025-02-25", "--json")
    assert report["counts"] == {"1-30": 1, "31-60": 0, "61-90": 0, "91+": 0}

    wall_clock(date(2025, 2, 25))
    code, paid, text = gjj(url, "loan", "pay", loan_no, "--amount", "2070.25", "--reference", "B1", "--source",
                           "card", "--json")
    assert code == 0, text
    assert (paid["penalty"], paid["interest"], paid["principal"]) == ("2.46", "1187.50", "880.29")

    wall_clock(date(2025, 3, 1))
    code, prepaid, text = gjj(url, "loan", "prepay", loan_no, "--principal", "50000.00", "--mode", "reduce-payment",
                              "--reference", "P1", "--json")
    assert code == 0, text
    assert (prepaid["interest"], prepaid["paid"]) == ("55.42", "50055.42")
    code, quote, _ = gjj(url, "loan", "payoff", loan_no, "--quote", "--json")
    assert (quote["principal"], quote["amount_due"]) == ("449119.71", "0.00")
    code, closed, text = gjj(url, "loan", "payoff", loan_no, "--reference", "P2", "--json")
    assert code == 0, text
    assert (closed["state"], closed["total"]) == ("CLOSED", quote["total"])

    code, trial, _ = gjj(url, "trial-balance", "--json")
    assert trial["balanced"] is True
    assert {row["account"]: row["balance"] for row in trial["accounts"]}["1101"] == "0.00"
    code, check, text = gjj(url, "books", "check", "--json")
    assert code == 0 and check["ok"] is True, text


def apply_args(id_number: str, **options: str) -> list[str]:
    """``gjj loan apply`` for the worked loan; ``options`` override (``monthly_income="4000.00"``)."""
    values = {"principal": "500000.00", "months": "360", "method": "equal-instalment", "price": "800000.00",
              "monthly_income": "20000.00", "bank": "ICBC", **options}
    args = ["loan", "apply", id_number]
    for name, value in values.items():
        args += [f"--{name.replace('_', '-')}", value]
    return args + ["--json"]


def test_refused_loan_commands_exit_2_and_change_nothing(centre: Any, wall_clock: Any) -> None:
    url, borrower, spouse = centre
    wall_clock(date(2025, 1, 10))
    before = loan_count(url)
    cases = [
        ({"months": "361"}, "months", "LN-1"),
        ({"principal": "500000.001"}, "principal", "MNY-1"),
        ({"principal": "-1.00"}, "principal", "MNY-1"),
        ({"price": "600000.00"}, "principal", "LN-1"),  # 80 % of the price is 480,000.00
        ({"monthly_income": "4000.00"}, "monthly_income", "LN-1"),  # 50 % is 2,000.00 < 2,067.79
        ({"method": "balloon"}, "method", "LN-3"),
    ]
    for options, field, rule in cases:
        code, out, text = gjj(url, *apply_args(borrower, **options))
        assert code == 2, (options, text)
        assert (out["error"]["field"], out["error"]["rule"].split(" ")[0]) == (field, rule), out
    code, out, _ = gjj(url, *apply_args(resident_id(date(1990, 2, 2), 999, True)))
    assert code == 3 and out["error"]["field"] == "id_number"
    wall_clock(date(2024, 10, 10))  # only 4 periods credited before October 2024
    code, out, _ = gjj(url, *apply_args(borrower))
    assert code == 2 and (out["error"]["field"], out["error"]["rule"]) == ("id_number", "LN-1")
    code, out, _ = gjj(url, "loan", "pay", "DK000", "--amount", "1.00", "--reference", "X", "--json")
    assert code == 3 and out["error"]["field"] == "loan"
    assert loan_count(url) == before

    wall_clock(date(2025, 1, 10))
    code, applied, text = gjj(url, *apply_args(borrower))
    assert code == 0, text
    code, out, _ = gjj(url, *apply_args(spouse, months="240"))  # one application per couple
    assert code == 2 and (out["error"]["field"], out["error"]["rule"]) == ("id_number", "LN-1")
    code, out, _ = gjj(url, "loan", "pay", applied["loan_no"], "--amount", "10.00", "--reference", "Y", "--json")
    assert code == 2 and (out["error"]["field"], out["error"]["rule"]) == ("loan", "LN-1")
    assert loan_count(url)[0] == before[0] + 1


def test_loan_suspense_through_the_cli(centre: Any, wall_clock: Any) -> None:
    """BNK-5: money beyond the amount due shows in `gjj loan suspense`; --apply and --refund move it once."""
    url, borrower, _ = centre
    wall_clock(date(2025, 1, 10))
    loan_no = gjj(url, *apply_args(borrower))[1]["loan_no"]
    wall_clock(date(2025, 1, 12))
    gjj(url, "loan", "approve", loan_no, "--json")
    wall_clock(date(2025, 1, 15))
    gjj(url, "loan", "disburse", loan_no, "--json")
    wall_clock(date(2025, 2, 17))
    code, paid, text = gjj(url, "loan", "pay", loan_no, "--amount", "2100.00", "--reference", "B1", "--json")
    assert code == 0 and paid["excess"] == "32.21", text
    assert gjj(url, "loan", "suspense", loan_no, "--json")[1]["held"] == "32.21"
    before = loan_count(url)
    code, refused, text = gjj(url, "loan", "suspense", loan_no, "--refund", "32.22", "--reference", "R1", "--json")
    assert code == 2 and (refused["error"]["field"], refused["error"]["rule"]) == ("amount", "BNK-5"), text
    assert loan_count(url) == before
    wall_clock(date(2025, 3, 17))
    code, applied, text = gjj(url, "loan", "suspense", loan_no, "--apply", "20.00", "--reference", "S1", "--json")
    assert code == 0 and applied["held"] == "12.21", text
    code, refund, text = gjj(url, "loan", "suspense", loan_no, "--refund", "12.21", "--reference", "R1", "--json")
    assert code == 0 and (refund["held"], refund["amount"]) == ("0.00", "12.21") and refund["serial"], text
    code, again, _ = gjj(url, "loan", "suspense", loan_no, "--refund", "12.21", "--reference", "R1", "--json")
    assert code == 0 and again["serial"] == refund["serial"]          # the same key: applied once
    code, listed, text = gjj(url, "books", "suspense", "--json")
    assert code == 0 and listed["ok"] and listed["items"] == [] and listed["total"] == "0.00", text
    code, earlier, text = gjj(url, "books", "suspense", "--as-of", "2025-02-17", "--json")
    assert code == 0 and [(i["kind"], i["amount"]) for i in earlier["items"]] == [("loan", "32.21")], text
    code, check, text = gjj(url, "books", "check", "--json")
    assert code == 0 and check["ok"] is True, text
