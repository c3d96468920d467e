"""A policy change to grace days or the penalty day count after a loan is disbursed (LN-7, ADR 0015).

The decision: a running loan keeps the terms it was disbursed with (its Disbursed event records them); a
later policy version applies to loans disbursed from its date on, and the change is announced —
``gjj policy check`` (and ``gjj init``) name it and list the running loans that keep their recorded terms —
instead of being silently ignored. Pinned here: the worked loan, disbursed under grace 0 and actual days,
still owes 2.46 of penalty ten days late after the policy moved to grace 3 and 30/360 (which would give
2.95 on 12 days from the due date, or nothing within grace), a loan disbursed after the change takes the new
terms, and the check names the first loan only.
"""

from __future__ import annotations

import copy
import importlib
import json
from datetime import date
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ledger.cli import app
from ledger.policy import Policy, TermChange, disbursement_term_changes, parse_policy
from ledger.services.policy_terms import policy_terms_report
from test_loans import APPLIED_ON, APPROVED_ON, apply, disbursed_loan, household

importlib.import_module("ledger.cli_policy")  # registers ``policy`` on the app

CHANGED_ON = date(2025, 2, 1)
CHANGE = '\n[[versions]]\neffective_from = "2025-02-01"\n\n[versions.loan]\ngrace_days = 3\n\n' \
         '[versions.time]\npenalty_day_count = "30/360"\n'
runner = CliRunner()


def changed_policy(sample: dict[str, Any]) -> Policy:
    data = copy.deepcopy(sample)
    data["versions"].append({"effective_from": CHANGED_ON.isoformat(), "loan": {"grace_days": 3},
                             "time": {"penalty_day_count": "30/360"}})
    return parse_policy(data, "<changed>")


def test_the_policy_names_each_change_of_a_term_fixed_at_disbursement() -> None:
    from conftest import sample_policy_data

    changes = disbursement_term_changes(changed_policy(sample_policy_data()))
    assert changes == [
        TermChange(CHANGED_ON, "grace_days", "loan.grace_days", 0, 3, "LN-7"),
        TermChange(CHANGED_ON, "penalty_day_count", "time.penalty_day_count", "actual", "30/360", "LN-7"),
    ]
    assert "running loans keep the terms they were disbursed with [LN-7]" in str(changes[0])
    assert disbursement_term_changes(parse_policy(sample_policy_data())) == []


def test_a_running_loan_keeps_its_terms_and_the_change_is_announced(open_sqlite_ledger: Any, fund_for: Any,
                                                                    sqlite_url: str, tmp_path: Path) -> None:
    from conftest import sample_policy_data

    fund = fund_for(open_sqlite_ledger(changed_policy(sample_policy_data())))
    people = household(fund, others=[{"birth_date": date(1985, 5, 5)}])
    running = disbursed_loan(fund, people.borrower)  # 2025-01-15: grace 0, actual days
    later = apply(fund, people.others[0][0], principal="200000.00", months=240)["loan_no"]
    fund.on(APPROVED_ON)
    fund.ledger.approve_loan(later, APPROVED_ON)
    fund.on(date(2025, 2, 3))
    fund.ledger.disburse_loan(later, date(2025, 2, 3))  # after the change: grace 3, 30/360
    terms = fund.ledger.loan(running).terms
    assert (terms["grace_days"], terms["penalty_day_count"]) == (0, "actual")
    new_terms = fund.ledger.loan(later).terms
    assert (new_terms["grace_days"], new_terms["penalty_day_count"]) == (3, "30/360")

    status = fund.ledger.loan_status(running, date(2025, 2, 25))  # 10 days late, as disbursed (LN-7)
    assert (status["penalty_accrued"], status["amount_due"]) == ("2.46", "2070.25")

    report = policy_terms_report(fund.ledger)
    keeping = {row["key"]: [loan["loan_no"] for loan in row["loans"]] for row in report["disbursement_term_changes"]}
    assert keeping == {"loan.grace_days": [running], "time.penalty_day_count": [running]}
    assert report["disbursement_term_changes"][0]["loans"][0] == {"loan_no": running, "disbursed_on": "2025-01-15",
                                                                   "recorded": "0"}
    assert APPLIED_ON < CHANGED_ON  # both applied under the first version; disbursement decides the terms

    policy_file = tmp_path / "changed.toml"
    from importlib import resources

    policy_file.write_text(resources.files("ledger.policies").joinpath("sample-city.toml").read_text("utf-8")
                           + CHANGE, encoding="utf-8")
    result = runner.invoke(app, ["--db", sqlite_url, "--policy", str(policy_file), "policy", "check", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["disbursement_term_changes"]
    assert [(row["key"], row["running_loans_keeping_their_terms"]) for row in listed] == [
        ("loan.grace_days", 1), ("time.penalty_day_count", 1)]
    result = runner.invoke(app, ["--db", sqlite_url, "--policy", str(policy_file), "init", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)["notices"]) == 2, result.output
