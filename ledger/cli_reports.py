"""``gjj projections|statement|audit``: the read side, member documents and audit on the command line.

Importing this module registers three command groups on ``ledger.cli.app``:

- ``projections rebuild | catch-up | digest`` — the read tables (ADR 0008);
- ``statement account | certificate | repayment | verify-certificate`` — 个人账户明细, 缴存证明
  and 还款明细 (ST-1) as JSON (``--json``) or PDF (``--pdf FILE``), built from the read models
  after a catch-up;
- ``audit verify | replay | check`` — the hash chain (AUD-1), an aggregate replayed to a
  version or time (MNY-4), and events against read models against the journal (GL-2).

Like every ``gjj`` command it only translates: errors name the field and the rule and exit
non-zero (2 refused, 3 not found); a check that finds a problem exits 4. The wall clock is
read here (MNY-2).
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger.application import CHINA_TZ
from ledger.audit import AuditChainError
from ledger.input_files import InputFileError, decode_utf8_text, read_input_bytes, refuse
from ledger.cli_input import codes
from ledger.cli import (
    GuardedTyper,
    JsonOption,
    app as main_app,
    console,
    err_console,
    fail,
    parse_day,
    run,
    say,
    today,
)
from ledger.projections import ProjectionError, Projector, ReadModel
from ledger.projections.audit_views import check_read_models, replay_view
from ledger.reports import (
    account_statement_to_json,
    contribution_certificate_to_json,
    render_account_statement_pdf,
    render_contribution_certificate_pdf,
    render_repayment_statement_pdf,
    repayment_statement_to_json,
)
from ledger.statements import account_statement, check_certificate, contribution_certificate, repayment_statement

CHECK_FAILED_EXIT = 4
CERTIFICATE_BYTES_MAX = 64 * 1024  # a certificate's JSON is a few kilobytes
PROBLEMS_SHOWN_MAX = 100

projections_app = GuardedTyper(help="Read models (rm_* tables) derived from the events.", no_args_is_help=True)
statement_app = GuardedTyper(help="Member documents: 个人账户明细, 缴存证明, 还款明细 (ST-1).", no_args_is_help=True)
audit_app = GuardedTyper(help="Audit: hash chain (AUD-1), replay (MNY-4), events vs read models (GL-2).",
                         no_args_is_help=True)
main_app.add_typer(projections_app, name="projections")
main_app.add_typer(statement_app, name="statement")
main_app.add_typer(audit_app, name="audit")


@contextmanager
def read_side(ledger: Any, catch_up: bool = True) -> Iterator[tuple[Projector, ReadModel]]:
    """The projector and read model of this ledger's store, caught up first."""
    projector = Projector.for_ledger(ledger)
    try:
        if catch_up:
            projector.catch_up()
        yield projector, ReadModel(projector.engine)
    finally:
        projector.close()


def parse_moment(text: str, field: str) -> datetime:
    """An ISO 8601 recorded time; without a zone it is China time (CST)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{field}: a time is YYYY-MM-DDTHH:MM[:SS][+08:00] (got {text!r})") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA_TZ)


def run_checked(as_json: bool, action: Any, render: Any = None) -> Any:
    """``ledger.cli.run`` where audit-chain and projection errors also leave named, with the rule, non-zero."""
    def guarded(ledger):
        try:
            return action(ledger)
        except (AuditChainError, ProjectionError) as error:
            fail(error, as_json)
    return run(as_json, guarded, render)


def write_pdf(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


# -- projections ----------------------------------------------------------------------------
@projections_app.command("rebuild")
def projections_rebuild(as_json: bool = JsonOption):
    """Project the whole log again into new read tables and swap them in at once; prints the digest."""
    def action(ledger):
        with read_side(ledger, catch_up=False) as (projector, _read), log_progress("rebuilding") as progress:
            result = projector.rebuild(progress=progress).as_dict()
            return {**result, "digest": projector.digest(), "tables": projector.table_counts()}
    run_checked(as_json, action)


@projections_app.command("catch-up")
def projections_catch_up(as_json: bool = JsonOption):
    """Apply the events stored since the last run (a page and its position per transaction)."""
    def action(ledger):
        with read_side(ledger, catch_up=False) as (projector, _read), log_progress("catching up") as progress:
            return projector.catch_up(progress=progress).as_dict()
    run_checked(as_json, action)


@contextmanager
def log_progress(label: str) -> Iterator[Any]:
    """A progress bar over log positions on stderr, redrawn after each page by the caller's thread: no
    refresh thread, so a rebuild may still fork its parsing process (``ledger.projections.rebuild``)."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                  auto_refresh=False) as bar:
        task = bar.add_task(label, total=None)

        def advance(position: int, last: int) -> None:
            bar.update(task, completed=position, total=last)
            bar.refresh()
        yield advance


@projections_app.command("digest")
def projections_digest(as_json: bool = JsonOption):
    """SHA-256 over every read table in key order: equal before and after a rebuild of the same events."""
    def action(ledger):
        with read_side(ledger, catch_up=False) as (projector, _read):
            return {"position": projector.position(), "lag": projector.lag(), "digest": projector.digest(),
                    "tables": projector.table_counts()}
    run_checked(as_json, action)


# -- statements ----------------------------------------------------------------------------------
def _render_statement(document: dict[str, Any]) -> None:
    table = Table(title=f"{document['title_zh']} {document['account_number']} {document['member_name']}")
    for column in ("业务日期", "业务类型", "原因", "摘要", "支出", "存入", "余额", "冲正"):
        table.add_column(column)
    for line in document["lines"]:
        table.add_row(line["value_date"], line["kind_zh"], line["reason_code"], line["reference"],
                      line["debit"] if line["debit"] != "0.00" else "",
                      line["credit"] if line["credit"] != "0.00" else "", line["balance"], line["mark_zh"])
    console.print(table)
    console.print(f"期初余额 {document['opening_balance']}  期末余额 {document['closing_balance']}", highlight=False)


@statement_app.command("account")
def statement_account(account_no: str,
                      date_from: Optional[str] = typer.Option(None, "--from", help="YYYY-MM-DD; the opening day"),
                      date_to: Optional[str] = typer.Option(None, "--to", help="YYYY-MM-DD; today if omitted"),
                      known_at: Optional[str] = typer.Option(None, help="Only what was recorded by this time"),
                      pdf: Optional[Path] = typer.Option(None, "--pdf", help="Write the PDF here"),
                      as_json: bool = JsonOption):
    """个人账户明细: opening balance, lines in value-date order, reversals marked 冲正, closing balance."""
    codes(account_no=account_no)
    day_to = parse_day(date_to, "to") if date_to else today()
    moment = parse_moment(known_at, "known_at") if known_at else None

    def action(ledger):
        with read_side(ledger) as (_projector, read):
            day_from = parse_day(date_from, "from") if date_from else read.account(account_no)["opened_on"]
            statement = account_statement(read, account_no, day_from, day_to, issued_on=today(),
                                          centre_name=ledger.policy.centre_name, known_at=moment)
        document = account_statement_to_json(statement)
        if pdf is not None:
            document["pdf"] = write_pdf(pdf, render_account_statement_pdf(statement))
        return document
    run_checked(as_json, action, _render_statement)


@statement_app.command("certificate")
def statement_certificate(id_number: str,
                          as_of: Optional[str] = typer.Option(None, help="YYYY-MM-DD; today if omitted"),
                          mask_id: bool = typer.Option(False, "--mask-id", help="Print the id number masked"),
                          pdf: Optional[Path] = typer.Option(None, "--pdf", help="Write the PDF here"),
                          as_json: bool = JsonOption):
    """缴存证明 as of a date, with a verification code tied to the audit chain head (ST-1, AUD-1)."""
    codes(id_number=id_number)
    day = parse_day(as_of, "as_of") if as_of else today()

    def action(ledger):
        with read_side(ledger) as (_projector, read):
            certificate = contribution_certificate(read, ledger.audit, ledger.policy, id_number, day,
                                                   issued_on=today(), mask_id=mask_id)
        if pdf is not None:
            write_pdf(pdf, render_contribution_certificate_pdf(certificate))
        return contribution_certificate_to_json(certificate)
    run_checked(as_json, action)


@statement_app.command("repayment")
def statement_repayment(loan_no: str,
                        as_of: Optional[str] = typer.Option(None, help="YYYY-MM-DD; today if omitted"),
                        pdf: Optional[Path] = typer.Option(None, "--pdf", help="Write the PDF here"),
                        as_json: bool = JsonOption):
    """还款明细: each instalment due, paid, its payers (OFF-5), days overdue and penalty (LN-7)."""
    codes(loan_no=loan_no)
    day = parse_day(as_of, "as_of") if as_of else today()

    def action(ledger):
        with read_side(ledger) as (_projector, read):
            statement = repayment_statement(read, loan_no, day, issued_on=today(),
                                            centre_name=ledger.policy.centre_name)
        document = repayment_statement_to_json(statement)
        if pdf is not None:
            document["pdf"] = write_pdf(pdf, render_repayment_statement_pdf(statement))
        return document

    def render(document: dict[str, Any]) -> None:
        table = Table(title=f"{document['title_zh']} {document['loan_number']} {document['borrower_name']} "
                            f"当前年利率 {document['annual_rate']}%")
        for column in ("期次", "应还日", "年利率", "应还本金", "应还利息", "实还日", "本人公积金", "配偶公积金", "银行卡",
                       "逾期天数", "罚息"):
            table.add_column(column)
        for row in document["instalments"]:
            if row["paid_on"] or row["days_overdue"]:
                table.add_row(str(row["number"]), row["due_on"], row["annual_rate"] or "", row["due_principal"],
                              row["due_interest"], row["paid_on"] or "", row["from_borrower_fund"],
                              row["from_spouse_fund"], row["from_card"], str(row["days_overdue"]), row["penalty"])
        console.print(table)
    run_checked(as_json, action, render)


@statement_app.command("verify-certificate")
def statement_verify_certificate(path: Path = typer.Argument(..., exists=True, dir_okay=False),
                                 as_json: bool = JsonOption):
    """Check a certificate's JSON: its verification code against its content and the audit chain."""
    try:
        document = certificate_document(path)
    except InputFileError as error:
        fail(error, as_json)
    result = run_checked(as_json, lambda ledger: check_certificate(ledger.audit, document).as_dict())
    if not result["ok"]:
        say("not valid", str(result["reason"]))
        raise typer.Exit(CHECK_FAILED_EXIT)


def certificate_document(path: Path) -> dict[str, Any]:
    """A certificate's JSON object; a file that is not one is refused with its line (never a traceback)."""
    text = decode_utf8_text(read_input_bytes(path, CERTIFICATE_BYTES_MAX))
    try:
        document = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise refuse("file", f"not a certificate JSON: {error.msg}", error.lineno, "ST-1") from None
    except ValueError as error:  # a number out of range (see _finite_float)
        raise refuse("file", f"not a certificate JSON: {error}", rule="ST-1") from None
    except RecursionError:
        raise refuse("file", "not a certificate JSON: nested too deeply", rule="ST-1") from None
    if not isinstance(document, dict):
        raise refuse("file", "not a certificate JSON object", rule="ST-1")
    return document


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:20]} is out of range")
    return number


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not a number a certificate holds")


# -- audit ---------------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(unchained_ok: bool = typer.Option(False, "--unchained-ok",
                                                   help="Events after the chain head are not a finding"),
                 as_json: bool = JsonOption):
    """Recompute the hash chain from the stored events; name the first bad position and its kind."""
    def action(ledger):
        report = ledger.audit.verify(unchained_ok=unchained_ok)
        head = ledger.audit.head()
        problems = [p._asdict() for p in report.problems[:PROBLEMS_SHOWN_MAX]]
        return {"ok": report.ok, "checked": report.checked, "dropped": report.dropped,
                "head": {"position": head.position, "hash": head.hash, "count": head.count},
                "first_problem": problems[0] if problems else None, "problems": problems}
    result = run_checked(as_json, action)
    if not result["ok"]:
        first = result["first_problem"] or {}
        say("AUD-1", f"first bad position {first.get('position')}: {first.get('kind')} — {first.get('message')}")
        raise typer.Exit(CHECK_FAILED_EXIT)


@audit_app.command("reseal")
def audit_reseal(as_json: bool = JsonOption):
    """Give every aggregate whose snapshot ``audit verify`` does not believe (written before seals, or
    tampered with) a sealed snapshot replayed from its events (after an upgrade, or after staff looked)."""
    run_checked(as_json, lambda ledger: ledger.reseal_snapshots())


@audit_app.command("replay")
def audit_replay(aggregate_id: str = typer.Argument(..., help="UUID, account number, resident id or loan number"),
                 version: Optional[int] = typer.Option(None, min=1, help="Replay up to this version"),
                 as_of: Optional[str] = typer.Option(None, help="Value date: the balance as of it (MNY-4)"),
                 known_at: Optional[str] = typer.Option(None, help="Recorded time: only what was known then"),
                 as_json: bool = JsonOption):
    """Any aggregate replayed from its events to a version, a value date or a recorded time."""
    codes(aggregate_id=aggregate_id)
    day = parse_day(as_of, "as_of") if as_of else None
    moment = parse_moment(known_at, "known_at") if known_at else None
    run_checked(as_json, lambda ledger: replay_view(ledger, aggregate_id, version, day, moment))


@audit_app.command("check")
def audit_check(as_json: bool = JsonOption):
    """Every balance from the events alone vs the read models vs the journal's 2001 (GL-2)."""
    def action(ledger):
        with read_side(ledger, catch_up=False) as (projector, _read):
            return check_read_models(ledger, projector)
    result = run_checked(as_json, action)
    if not result["ok"]:
        say("mismatch", f"{result['mismatch_count']} accounts; 2001 events {result['journal_2001_from_events']} / "
                        f"read {result['journal_2001_from_read_model']} / Σ balances "
                        f"{result['sum_of_balances_from_events']}")
        raise typer.Exit(CHECK_FAILED_EXIT)
