"""``gjj policy check``: the dated policy file as the ledger reads it, and what a change of it does not reach.

Importing this module registers the ``policy`` command group on ``ledger.cli.app``. ``check`` loads the
policy (``--policy FILE``, the sample city by default; a bad file is refused with its key and rule), lists
its versions, and announces every later version that changes a loan term fixed at disbursement (grace days,
penalty day count and multiplier, prepayment terms, due day): such a change applies to loans disbursed from
its date on, and each running loan that keeps its recorded value is listed (ADR 0015). It only reads.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from ledger.cli import JsonOption, app as main_app, console, run

policy_app = typer.Typer(help="The dated policy file (every ⚙ of the rules).", no_args_is_help=True)
main_app.add_typer(policy_app, name="policy")


def _render(report: dict[str, Any]) -> None:
    console.print(f"{escape(report['centre'])}: {escape(report['source'])}, versions from "
                  f"{', '.join(report['versions'])}", highlight=False)
    for change in report["disbursement_term_changes"]:
        console.print(f"notice: {escape(change['notice'])}", highlight=False, soft_wrap=True)
        loans = ", ".join(f"{row['loan_no']} ({row['recorded']})" for row in change["loans"])
        console.print(f"  running loans keeping their terms: {change['running_loans_keeping_their_terms']}"
                      f"{': ' + loans if loans else ''}", highlight=False, soft_wrap=True)


@policy_app.command("check")
def policy_check(as_json: bool = JsonOption):
    """Load and check the policy; announce changes of terms that running loans keep from disbursement."""
    from ledger.services.policy_terms import policy_terms_report

    run(as_json, policy_terms_report, _render)
