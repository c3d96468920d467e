"""``gjj bank …``, ``gjj reconcile`` and ``gjj serve``: the bank-facing commands of the CLI (BNK-1..6, REC-1).

They only translate: read or write the bank's bytes through ``bank_adapters`` (national delimited files
in the bank's encoding, or CSV), call the ledger's banking use cases, print a report (``--json``: money as
strings). ``register_bank_commands(app)`` adds them to the main ``gjj`` app; the wall clock is read by
the main CLI's ``today()`` (MNY-2). Exit codes as the main CLI: 2 for a refused file or command, 3 for a
missing record; an import whose file was accepted but had bad lines exits 1 after applying the rest.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from bank_adapters.formats import BankFileError
from bank_adapters.interface import BankAdapter, CsvAdapter, FolderTransport, NationalFileAdapter
from ledger.cli import GuardedTyper
from ledger.cli_input import codes, run_day
from ledger.input_files import read_input_bytes

bank_app = GuardedTyper(help="Bank files: debit batches out, results and statements in (BNK-1..6).",
                        no_args_is_help=True)
FORMATS = ("national", "csv")
PROBLEM_LINES_SHOWN_MAX = 200
RESULT_FILE_PREFIX = b"$"
CSV_KIND_COLUMN = b"record_kind"
CONTROL_SUFFIX = "ctl"  # BDC105_<BANK>_<batch>.ctl: the batch header beside its file (docs/bank-adapters.md)

JsonOption = typer.Option(False, "--json", help="Print JSON (money as strings with two decimals).")
FormatOption = typer.Option("national", "--format", help="national (delimited, GBK/GB18030) | csv")
EncodingOption = typer.Option(None, "--encoding", help="GBK | GB18030 (default: policy bank.encoding)")


def _cli() -> Any:
    from ledger import cli

    return cli


def banking_ledger() -> Any:
    """The CLI's ledger, with the banking use cases mixed in until ``Ledger`` lists them."""
    from ledger.app import Ledger
    from ledger.policy import load_policy
    from ledger.services.banking import with_banking

    cli = _cli()
    return with_banking(Ledger)(cli.STATE["db"], policy=load_policy(cli.STATE["policy"]))


def run_banking(as_json: bool, action: Any, render: Any = None) -> Any:
    """Like ``ledger.cli.run``: open, act, print; a refused file lists every problem."""
    cli = _cli()
    try:
        ledger = banking_ledger()
        try:
            result = action(ledger)
        finally:
            ledger.close()
    except BankFileError as error:
        _file_refused(error, as_json)
    except cli.EXPECTED_ERRORS as error:
        cli.fail(error, as_json)
    cli.emit(result, as_json, render)
    return result


def _file_refused(error: BankFileError, as_json: bool) -> None:
    problems = [{"line": p.line_number, "field": p.field, "rule": p.rule, "value": p.value, "label": p.label}
                for p in error.problems]
    if as_json:
        payload = {"type": type(error).__name__, "rule": "BNK-3", "message": "file refused whole",
                   "problems": problems, "omitted": error.omitted_count}
        print(json.dumps({"error": payload}, ensure_ascii=False, indent=2))
    _cli().say("refused", str(error))
    raise typer.Exit(2)


def adapter_for(file_format: str, encoding: str | None, ledger: Any) -> BankAdapter:
    if file_format not in FORMATS:
        raise typer.BadParameter(f"format is one of {FORMATS}")
    if file_format == "csv":
        return CsvAdapter()
    return NationalFileAdapter(encoding or ledger.policy.at(ledger.today()).bank.encoding)


def detect_kind(data: bytes, file_format: str) -> str:
    """BDC108 (a ``$`` summary first, or CSV with record kinds) or a statement (SBDC100/BDC113)."""
    first = data.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    if file_format == "csv":
        return "BDC108" if first.startswith(CSV_KIND_COLUMN) else "SBDC100"
    return "BDC108" if first.startswith(RESULT_FILE_PREFIX) else "SBDC100"


def _day(text: Optional[str], field: str) -> date:
    cli = _cli()
    return cli.parse_day(text, field) if text else cli.today()


# -- gjj bank export-debits --------------------------------------------------------------------------
@bank_app.command("export-debits")
def export_debits(bank: str = typer.Option(..., help="The bank's code, e.g. ICBC"),
                  on: Optional[str] = typer.Option(None, "--date", help="Batch date YYYY-MM-DD (default today)"),
                  out: Path = typer.Option(Path("gjj-data/outgoing"), "--out", help="Folder for the file"),
                  file_format: str = FormatOption, encoding: Optional[str] = EncodingOption,
                  as_json: bool = JsonOption):
    """Write the day's BDC105 debit batch (detail lines; its header in the .ctl control record beside it) and
    mark its debits SUBMITTED (idempotent: a re-export returns the same files)."""
    from ledger.services.banking import debit_batch_file

    codes(bank=bank)

    def action(ledger):
        day = run_day(ledger, on)
        adapter = adapter_for(file_format, encoding, ledger)
        record = ledger.export_debits(bank, day, getattr(adapter, "encoding", None))
        summary = {k: record.get(k) for k in ("bank", "on", "batch_number", "count", "total", "repeat", "left_out")}
        if not record.get("rows"):
            return {**summary, "file": None}
        batch = debit_batch_file(record)
        data, control = adapter.write_debit_batch(batch), adapter.write_debit_control(batch)
        suffix = "csv" if file_format == "csv" else "txt"
        name = f"BDC105_{bank}_{record['batch_number']}"
        transport = FolderTransport(out, out)
        control_path = transport.send(f"{name}.{CONTROL_SUFFIX}", control) if control is not None else None
        path = transport.send(f"{name}.{suffix}", data)
        return {**summary, "file": str(path), "control": str(control_path) if control_path else None}
    run_banking(as_json, action)


# -- gjj bank import ------------------------------------------------------------------------------------
@bank_app.command("import")
def import_file(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="BDC108 or SBDC100/BDC113"),
                bank: Optional[str] = typer.Option(None, help="The bank's code (required for statements)"),
                file_format: str = FormatOption, encoding: Optional[str] = EncodingOption,
                as_json: bool = JsonOption):
    """Apply a BDC108 result file or a statement: bad lines reported with their line number, the rest
    applied exactly once (BNK-2..6)."""
    codes(bank=bank)

    def action(ledger):
        data = read_input_bytes(path)
        kind = detect_kind(data, file_format)
        adapter = adapter_for(file_format, encoding, ledger)
        header_lines = 1 if file_format == "csv" else 0
        if kind == "BDC108":
            return ledger.import_debit_results(adapter.read_debit_results(data), 2 + header_lines, bank)
        if not bank:
            raise typer.BadParameter("--bank: a statement does not name its bank")
        return ledger.import_statement(bank, adapter.read_statement(data), 1 + header_lines)

    result = run_banking(as_json, action, _render_import)
    if result and result["problems"]:
        raise typer.Exit(1)


def _render_import(result: dict[str, Any]) -> None:
    console = _cli().console
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result["counts"].items()))
    console.print(f"{result['kind']} from {result['bank']}: {result['lines_read']} lines: {counts}", highlight=False)
    for row in (result["problems"] + result["suspense"])[:PROBLEM_LINES_SHOWN_MAX]:
        console.print(f"  line {row['line']} {row['status']}: {row['amount']} {row['serial'] or ''} "
                      f"{row['field']}: {row['message']} [{row['rule']}]", highlight=False, markup=False,
                      soft_wrap=True)


# -- gjj reconcile -------------------------------------------------------------------------------------------
def reconcile_command(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="SBDC100/BDC113 statement"),
                      dry_run: bool = typer.Option(False, "--dry-run", help="Match and report; record nothing"),
                      on: Optional[str] = typer.Option(None, "--date", help="Statement date S (default: last line)"),
                      csv_out: Optional[Path] = typer.Option(None, "--csv", help="Also write the rows as CSV"),
                      file_format: str = FormatOption, encoding: Optional[str] = EncodingOption,
                      as_json: bool = JsonOption):
    """Reconcile a statement against the bank-deposit book (REC-1) and print the 银行存款余额调节表."""
    from ledger.reconcile import reconcile, to_csv, to_text

    day = _cli().parse_day(on, "date") if on else None

    def action(ledger):
        data = read_input_bytes(path)
        adapter = adapter_for(file_format, encoding, ledger)
        first_line = 2 if file_format == "csv" else 1
        results = reconcile(ledger, adapter.read_statement(data), statement_on=day, dry_run=dry_run,
                            first_line=first_line)
        if csv_out:
            csv_out.write_text(to_csv(results), encoding="utf-8")
        return {"results": [r.as_dict() for r in results], "text": [to_text(r) for r in results]}

    def render(result):
        for text in result["text"]:
            _cli().console.print(text, highlight=False, markup=False)
    result = run_banking(as_json, action, render)
    if any(not r["sheet"]["balanced"] for r in result["results"]):
        raise typer.Exit(1)


# -- gjj serve -------------------------------------------------------------------------------------------------
def serve_command(host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
                  port: int = typer.Option(8000, min=1, max=65535),
                  workers: int = typer.Option(1, min=1, max=64, help="uvicorn worker processes")):
    """Serve the bank API (OpenAPI at /docs); bank keys from GJJ_BANK_KEYS or GJJ_BANK_KEYS_FILE."""
    import uvicorn

    from ledger.api import load_bank_keys

    try:
        keys = load_bank_keys()
    except (OSError, ValueError) as error:
        raise typer.BadParameter(f"bank keys: {error}") from None
    if not keys:
        raise typer.BadParameter("no bank keys: set GJJ_BANK_KEYS=ICBC:key1,... or GJJ_BANK_KEYS_FILE")
    cli = _cli()
    if workers > 1:  # each worker process opens its own ledger from the environment
        if cli.STATE["db"]:
            os.environ["GJJ_DATABASE_URL"] = cli.STATE["db"]
        if cli.STATE["policy"]:
            os.environ["GJJ_POLICY"] = str(cli.STATE["policy"])
        uvicorn.run("ledger.api:app_from_env", host=host, port=port, workers=workers, factory=True)
        return
    uvicorn.run(build_app(cli.STATE["db"], cli.STATE["policy"], keys), host=host, port=port)


def build_app(db: Optional[str], policy: Optional[Path], keys: dict[str, str]) -> Any:
    from ledger.api import create_app
    from ledger.app import Ledger
    from ledger.policy import load_policy
    from ledger.services.banking import with_banking

    return create_app(lambda: with_banking(Ledger)(db, policy=load_policy(policy)), keys)


def register_bank_commands(app: typer.Typer) -> None:
    """Add ``bank``, ``reconcile`` and ``serve`` to the main app (once)."""
    if any(group.name == "bank" for group in app.registered_groups):
        return
    app.add_typer(bank_app, name="bank")
    app.command("reconcile")(reconcile_command)
    app.command("serve")(serve_command)

