"""End-to-end tests through the real ``gjj`` entry point (Typer's runner and one real subprocess)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.sampledata import credit_code, resident_id

runner = CliRunner()


def gjj(url: str, *args: str) -> tuple[int, dict | list | None, str]:
    result = runner.invoke(app, ["--db", url, *args])
    payload = None
    if "--json" in args and result.stdout.strip().startswith(("{", "[")):
        payload = json.loads(result.stdout)
    return result.exit_code, payload, result.stdout + (result.stderr or "")


@pytest.fixture()
def centre(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/cli.sqlite3"
    employer = credit_code(77)
    members = [resident_id(date(1988, 5, 6), i, male=i % 2 == 0) for i in range(3)]
    code, out, text = gjj(url, "employer", "open", employer, "--name", "测试单位", "--bank-account", "6222000000000001",
                          "--ratio", "12", "--json")
    assert code == 0, text
    accounts = []
    for index, number in enumerate(members):
        code, out, text = gjj(url, "member", "open", number, "--name", f"成员{index}", "--employer", employer, "--json")
        assert code == 0, text
        code, out, text = gjj(url, "account", "open", number, "--base", "7777.00", "--json")
        assert code == 0, text
        accounts.append(out["account_no"])
    return url, employer, accounts, tmp_path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["employer", "period", "kind", "document_number", "account_no", "base", "employer_amount",
                         "employee_amount"])
        writer.writerows(rows)
    return path


def test_import_receipt_balance_and_trial_balance(centre):
    url, employer, accounts, tmp = centre
    period = date.today().strftime("%Y-%m")
    rows = [[employer, period, "remittance", "D1", a, "7777.00", "933.24", "933.24"] for a in accounts]
    rows.append([employer, period, "remittance", "D1", accounts[0], "7777.00", "933.245", "933.24"])  # 3 decimals
    rows.append([employer, period, "remittance", "D1", "0000000000000000", "7777.00", "933.24", "933.24"])
    code, report, text = gjj(url, "remit", "import", str(write_csv(tmp / "r.csv", rows)), "--json")
    assert code == 1, text  # problems reported: non-zero exit, good lines applied
    assert [(p["line"], p["field"]) for p in report["problems"]] == [(5, "employer_amount"), (6, "account_no")]
    assert report["lines_accepted"] == 3
    serial, total = report["documents"][0]["serial"], report["documents"][0]["total"]
    assert total == "5599.44"

    code, again, _ = gjj(url, "remit", "import", str(tmp / "r.csv"), "--json")
    assert again["lines_accepted"] == 0 and again["documents"][0]["repeat"] is True

    code, receipt, text = gjj(url, "remit", "receipt", "--bank", "ICBC", "--host-date", "20260101", "--host-serial",
                              "H1", "--amount", total, "--serial", serial, "--json")
    assert code == 0, text
    assert receipt["applied"] == "5599.44" and receipt["suspense"] == "0.00"
    code, bal, _ = gjj(url, "balance", accounts[0], "--json")
    assert bal["balance"] == "1866.48"
    code, tb, _ = gjj(url, "trial-balance", "--json")
    assert tb["balanced"] is True and tb["difference"] == "0.00"
    code, check, _ = gjj(url, "books", "check", "--json")
    assert code == 0 and check["ok"] is True


def test_bad_input_names_field_and_rule_and_changes_nothing(centre):
    url, employer, accounts, _ = centre
    code, before, _ = gjj(url, "trial-balance", "--json")
    code, out, text = gjj(url, "withdraw", accounts[0], "--kind", "rent", "--amount", "1.005", "-e",
                          "contract_number=C", "-e", "monthly_rent=1000", "-e", "months=1", "--key", "k1", "--json")
    assert code == 2
    assert out["error"]["field"] == "amount" and "MNY-1" in out["error"]["rule"]
    code, out, _ = gjj(url, "withdraw", accounts[0], "--kind", "rent", "--amount", "100", "-e", "contract_number=C",
                       "--key", "k2", "--json")
    assert code == 2 and out["error"]["field"] == "monthly_rent" and out["error"]["rule"] == "WD-1"
    code, out, _ = gjj(url, "withdraw", accounts[0], "--kind", "rent", "--amount", "100", "-e", "contract_number=C",
                       "-e", "monthly_rent=1000", "-e", "months=1", "--key", "k3", "--json")
    assert code == 2 and out["error"]["rule"] == "ACC-3"
    code, out, _ = gjj(url, "member", "open", "110105198805060010", "--name", "x", "--employer", employer, "--json")
    assert code == 2 and out["error"]["field"] == "id_number"
    code, out, _ = gjj(url, "balance", "does-not-exist", "--json")
    assert code == 3 and out["error"]["field"] == "account"
    code, after, _ = gjj(url, "trial-balance", "--json")
    assert after == before


def test_real_subprocess_reports_json(tmp_path: Path):
    env = {**os.environ, "GJJ_DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite3"}
    done = subprocess.run([sys.executable, "-m", "ledger.cli", "init", "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["store"] == "sqlite"
