"""The ``gjj`` command line: an entry point that only translates and calls the ledger.

Every reporting command takes ``--json`` (money as strings with two decimals).
Every command that records business takes ``--on DATE``, its value date (today by default;
MNY-4 refuses a future date or one older than the policy allows). Options are read and checked
before anything is written (``ledger.cli_input``: amounts by the one parser, dates, codes and
names, TXT-1). Errors name the field and the rule on stderr as ``field: message [RULE]`` and exit
non-zero (2 for a refused command, 3 for a missing record); nothing is saved when a command is
refused. The wall clock is read here, never in the ledger (MNY-2).
"""

from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ledger.aggregates.base import LedgerRuleError
from ledger.application import ConcurrencyConflictError, NotFoundError
from ledger.cli_input import codes, count, day_or_none, evidence_fields, names, optional_codes, run_day, value_day
from ledger.dates import parse_date
from ledger.input_files import InputFileError
from ledger.money import Money, MoneyError
from ledger.policy import PolicyError, load_policy
from ledger.storage import StorageConfigError

MONTHS_MAX = 9_999
ALLOCATIONS_MAX = 999_999


class GuardedTyper(typer.Typer):
    """A Typer app whose commands report a refused input (raised before ``run``, e.g. a bad date) like
    every other refusal: ``field: message [RULE]``, exit 2 — never a traceback."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)

        def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(function)
            def guarded(*call_args: Any, **call_kwargs: Any) -> Any:
                try:
                    return function(*call_args, **call_kwargs)
                except EXPECTED_ERRORS as error:
                    fail(error, bool(call_kwargs.get("as_json")))
            register(guarded)
            return function
        return decorator


app = GuardedTyper(help="Book of record of a Housing Provident Fund centre (住房公积金).", no_args_is_help=True,
                   pretty_exceptions_enable=False)
employer_app = GuardedTyper(help="Employers (缴存单位).", no_args_is_help=True)
member_app = GuardedTyper(help="Members (缴存职工).", no_args_is_help=True)
account_app = GuardedTyper(help="Fund accounts (个人账户).", no_args_is_help=True)
remit_app = GuardedTyper(help="Remittances (汇缴), back-payments (补缴), bank receipts, suspense.", no_args_is_help=True)
interest_app = GuardedTyper(help="Interest settlement (结息).", no_args_is_help=True)
books_app = GuardedTyper(help="The double-entry books.", no_args_is_help=True)
payout_app = GuardedTyper(help="Payments instructed to the bank.", no_args_is_help=True)
loan_app = GuardedTyper(help="Fund loans (个人住房公积金贷款).", no_args_is_help=True)
app.add_typer(loan_app, name="loan")
offset_app = GuardedTyper(help="Monthly offset repayment (按月冲还贷).", no_args_is_help=True)
mandate_app = GuardedTyper(help="Offset mandates (冲还贷协议).", no_args_is_help=True)
debit_app = GuardedTyper(help="Card debits (还款银行卡扣款).", no_args_is_help=True)
scheduler_app = GuardedTyper(help="The daily scheduler (APScheduler).", no_args_is_help=True)
offset_app.add_typer(mandate_app, name="mandate")
app.add_typer(offset_app, name="offset")
app.add_typer(debit_app, name="debit")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(employer_app, name="employer")
app.add_typer(member_app, name="member")
app.add_typer(account_app, name="account")
app.add_typer(remit_app, name="remit")
app.add_typer(interest_app, name="interest")
app.add_typer(books_app, name="books")
app.add_typer(payout_app, name="payout")

# No markup: what people and banks typed ("[/x]" as a name) is printed as given, never read as style tags.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)
STATE: dict[str, Any] = {"db": None, "policy": None}

DbOption = typer.Option(None, "--db", envvar="GJJ_DATABASE_URL", help="sqlite:///file or postgresql://...")
JsonOption = typer.Option(False, "--json", help="Print JSON (money as strings with two decimals).")
OnOption = typer.Option(None, "--on", help="Value date YYYY-MM-DD (业务日期), today by default (MNY-4)")


@app.callback()
def main_options(db: Optional[str] = DbOption,
                 policy: Optional[Path] = typer.Option(None, "--policy", help="Policy file (TOML); sample city by default.")):
    STATE["db"] = db
    STATE["policy"] = policy


def open_ledger():
    from ledger.app import Ledger

    return Ledger(STATE["db"], policy=load_policy(STATE["policy"]))


@contextmanager
def ledger_session() -> Iterator[Any]:
    ledger = open_ledger()
    try:
        yield ledger
    finally:
        ledger.close()


def fail(error: Exception, as_json: bool) -> None:
    field = getattr(error, "field", None) or ""
    rule = getattr(error, "rule_id", None) or getattr(error, "rule", None) or type(error).__name__
    code = 3 if isinstance(error, NotFoundError) else 2
    payload = {"error": {"type": type(error).__name__, "field": field, "rule": rule, "message": str(error)}}
    if isinstance(error, InputFileError):  # a file refused whole: every problem with its line
        payload["error"]["problems"] = [problem.as_dict() for problem in error.problems]
    if as_json:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    text = str(error)
    say("error", text if text.endswith(f"[{rule}]") else f"{text} [{rule}]")
    raise typer.Exit(code)


def say(label: str, text: str, style: str = "red") -> None:
    """``label: text`` on stderr, the label styled; ``text`` is printed as given, never read as markup."""
    err_console.print(Text.assemble((label, style), ": ", text), highlight=False, soft_wrap=True)


EXPECTED_ERRORS = (LedgerRuleError, MoneyError, NotFoundError, PolicyError, StorageConfigError,
                   ConcurrencyConflictError, ValueError)


def run(as_json: bool, action: Callable[[Any], Any], render: Callable[[Any], None] | None = None) -> Any:
    """Open the ledger, run one action, print its result; refusals exit non-zero."""
    try:
        with ledger_session() as ledger:
            result = action(ledger)
    except EXPECTED_ERRORS as error:
        fail(error, as_json)
    emit(result, as_json, render)
    return result


def emit(result: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    elif render is not None:
        render(result)
    else:
        for key, value in (result.items() if isinstance(result, dict) else []):
            console.print(Text.assemble((str(key), "bold"), f": {value}"), highlight=False)


def parse_day(text: str, field: str) -> date:
    """A date option ``YYYY-MM-DD`` (ledger.dates: a real day in range, else refused naming the field)."""
    return parse_date(text, field)


def today() -> date:
    from ledger.application import Clock

    return Clock().now().date()


def progress_bar(total: int, label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                    transient=False)


# -- init -----------------------------------------------------------------------
@app.command()
def init(as_json: bool = JsonOption):
    """Create the event store (the SQLite file or the PostgreSQL tables) and check the policy."""
    from ledger.policy import disbursement_term_changes

    def action(ledger):
        notices = [str(change) for change in disbursement_term_changes(ledger.policy)]  # ADR 0015
        return {"store": ledger.storage.engine, "url": ledger.storage.url, "policy": ledger.policy.source,
                "centre": ledger.policy.centre_name, "policy_versions": len(ledger.policy.versions),
                **({"notices": notices} if notices else {})}
    run(as_json, action)


# -- employers ---------------------------------------------------------------------
@employer_app.command("open")
def employer_open(credit_code: str, name: str = typer.Option(..., help="Registered name"),
                  bank_account: str = typer.Option(..., help="Employer's bank account"),
                  opened_on: Optional[str] = typer.Option(None, "--on", "--opened-on",
                                                          help="Registration date YYYY-MM-DD, today by default; "
                                                               "an employer registered before the ledger may be "
                                                               "entered with its own date (never a future one)"),
                  ratio: Optional[str] = typer.Option(None, help="Both ratios in percent, e.g. 12"),
                  as_json: bool = JsonOption):
    """Open an employer (EMP-1): unified social credit code checked (GB 32100)."""
    codes(credit_code=credit_code, bank_account=bank_account)
    names(name=name)
    # EMP-1 registration is a fact about the employer, not a money movement: no MNY-4 back-dating limit
    run(as_json, lambda l: l.open_employer(credit_code, name, bank_account, run_day(l, opened_on, "opened_on"),
                                           ratio=ratio))


@employer_app.command("ratios")
def employer_ratios(credit_code: str, from_period: str = typer.Option(...), employer_ratio: str = typer.Option(...),
                    employee_ratio: str = typer.Option(...), on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Set the dated contribution ratios (调比, CON-1)."""
    codes(credit_code=credit_code, from_period=from_period)
    run(as_json, lambda l: l.set_ratios(credit_code, from_period, employer_ratio, employee_ratio, value_day(l, on)))


@employer_app.command("defer")
def employer_defer(credit_code: str, first_period: str = typer.Option(...), last_period: str = typer.Option(...),
                   on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Approve a deferral (缓缴, CON-3) with the policy's back-payment deadline."""
    codes(credit_code=credit_code, first_period=first_period, last_period=last_period)
    run(as_json, lambda l: l.defer(credit_code, first_period, last_period, value_day(l, on)))


# -- members and accounts ------------------------------------------------------------
@member_app.command("open")
def member_open(id_number: str, name: str = typer.Option(...), employer: str = typer.Option(..., help="Credit code"),
                birth_date: Optional[str] = typer.Option(None), sex: Optional[str] = typer.Option(None),
                on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Register a member (ACC-4): resident id checked; birth date and sex must match it."""
    codes(id_number=id_number, employer=employer, sex=sex)
    names(name=name)
    birth = parse_day(birth_date, "birth_date") if birth_date else None
    run(as_json, lambda l: l.open_member(id_number, name, employer, value_day(l, on), birth_date=birth, sex=sex))


@member_app.command("spouse")
def member_spouse(id_number: str, spouse_id_number: str, unlink: bool = typer.Option(False),
                  on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Link (or unlink) two members as spouses; both sides record it in one save."""
    codes(id_number=id_number, spouse_id_number=spouse_id_number)
    if unlink:
        run(as_json, lambda l: l.unlink_spouses(id_number, spouse_id_number, value_day(l, on)))
    else:
        run(as_json, lambda l: l.link_spouses(id_number, spouse_id_number, value_day(l, on)))


@member_app.command("card")
def member_card(id_number: str, bank: str = typer.Option(...), card_number: str = typer.Option(...),
                branch_code: str = typer.Option(""), agreement: str = typer.Option(""), as_json: bool = JsonOption):
    """Set the borrower's repayment card (还款银行卡, LN-9); Luhn-checked."""
    codes(id_number=id_number, bank=bank, card_number=card_number)
    optional_codes(branch_code=branch_code, agreement=agreement)
    run(as_json, lambda l: l.set_card(id_number, bank, card_number, branch_code, agreement))


@account_app.command("open")
def account_open(id_number: str, base: Optional[str] = typer.Option(None, help="Monthly contribution base"),
                 from_period: Optional[str] = typer.Option(None), on: Optional[str] = OnOption,
                 as_json: bool = JsonOption):
    """Open the member's fund account (ACC-1: one per member)."""
    codes(id_number=id_number, from_period=from_period)
    run(as_json, lambda l: l.open_account(id_number, value_day(l, on), base=base, from_period=from_period))


@account_app.command("base")
def account_base(account_no: str, from_period: str = typer.Option(...), base: str = typer.Option(...),
                 on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Set the member's dated contribution base (调基, CON-1)."""
    codes(account_no=account_no, from_period=from_period)
    run(as_json, lambda l: l.set_base(account_no, from_period, base, value_day(l, on)))


@account_app.command("seal")
def account_seal(account_no: str,
                 value_date: Optional[str] = typer.Option(None, "--on", "--value-date", help="Value date YYYY-MM-DD"),
                 reason: str = "left employer", as_json: bool = JsonOption):
    """Seal (封存) a NORMAL account."""
    codes(account_no=account_no)
    names(reason=reason)
    run(as_json, lambda l: l.seal(account_no, value_day(l, value_date), reason))


@account_app.command("unseal")
def account_unseal(account_no: str, employer: Optional[str] = typer.Option(None), on: Optional[str] = OnOption,
                   as_json: bool = JsonOption):
    """Unseal (启封) a SEALED account, optionally under a new employer."""
    codes(account_no=account_no, employer=employer)
    run(as_json, lambda l: l.unseal(account_no, value_day(l, on), employer))


@account_app.command("freeze")
def account_freeze(account_no: str, authority: str = typer.Option(..., help="court | centre"),
                   document: str = typer.Option(...), amount: Optional[str] = typer.Option(None, help="Whole balance if omitted"),
                   on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Freeze (冻结) the whole balance or a sum (ACC-5)."""
    codes(account_no=account_no, authority=authority, document=document)
    run(as_json, lambda l: l.freeze(account_no, authority, document, value_day(l, on), amount))


@account_app.command("unfreeze")
def account_unfreeze(account_no: str, authority: str = typer.Option(...), document: str = typer.Option(...),
                     lifting_document: str = typer.Option(...), on: Optional[str] = OnOption,
                     as_json: bool = JsonOption):
    """Lift a freeze: only the same authority's document lifts it (ACC-5)."""
    codes(account_no=account_no, authority=authority, document=document, lifting_document=lifting_document)
    run(as_json, lambda l: l.unfreeze(account_no, authority, document, lifting_document, value_day(l, on)))


@account_app.command("court-deduct")
def account_court_deduct(account_no: str, amount: str = typer.Option(...), document: str = typer.Option(...),
                         on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """A court deduction (司法扣划) named in a document; may debit a frozen account."""
    codes(account_no=account_no, document=document)
    run(as_json, lambda l: l.court_deduct(account_no, amount, value_day(l, on), document))


@account_app.command("close")
def account_close(account_no: str, reason: str = typer.Option(..., help="transfer-out | merge | withdrawal"),
                  on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Close (销户) an account whose balance is 0.00."""
    codes(account_no=account_no, reason=reason)
    run(as_json, lambda l: l.close_account(account_no, reason, value_day(l, on)))


@app.command()
def balance(account_no: str, as_of: Optional[str] = typer.Option(None, help="Value date YYYY-MM-DD"),
            as_json: bool = JsonOption):
    """Balance of an account, now or as of a value date (MNY-4)."""
    codes(account_no=account_no)
    day = day_or_none(as_of, "as_of")
    run(as_json, lambda l: l.balance(account_no, day))


@app.command()
def history(account_no: str, as_of: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """Account history in value-date order with running balance; reversals marked."""
    codes(account_no=account_no)
    day = day_or_none(as_of, "as_of")

    def render(result):
        table = Table(title=f"account {result['account_no']} ({result['state']})")
        for column in ("value date", "kind", "amount", "balance", "posting", "reversed"):
            table.add_column(column)
        for line in result["lines"]:
            table.add_row(line["value_date"], line["kind"], line["amount"], line["balance"], line["posting_id"],
                          "冲正" if line["reversed"] or line["kind"] == "reversal" else "")
        console.print(table)
    run(as_json, lambda l: l.history(account_no, day), render)


# -- remittances ------------------------------------------------------------------------
@remit_app.command("import")
def remit_import(path: Path = typer.Argument(..., exists=True, dir_okay=False), on: Optional[str] = OnOption,
                 as_json: bool = JsonOption):
    """Import an employer remittance list (CSV, CON-4): bad lines reported, good lines applied once; a file
    that does not parse (not UTF-8, a line with more or fewer fields than the header) is refused whole."""
    from ledger.input_files import input_line_count

    def action(ledger):
        day = value_day(ledger, on)
        total_lines = max(input_line_count(path) - 1, 0)
        with progress_bar(total_lines, "importing") as bar:
            task = bar.add_task("import", total=total_lines)
            return ledger.import_remittances(path, day, progress=lambda n: bar.advance(task, n))

    def render(result):
        console.print(f"lines read {result['lines_read']}, accepted {result['lines_accepted']}, "
                      f"documents {len(result['documents'])}, problems {len(result['problems'])}")
        for document in result["documents"]:
            console.print(f"  document {document['document']} {document['period']}: serial {document['serial']}, "
                          f"total {document['total']}{' (repeat)' if document.get('repeat') else ''}",
                          highlight=False, markup=False)
        for problem in result["problems"][:200]:
            console.print(f"  line {problem['line']}: {problem['field']}: {problem['message']} [{problem['rule']}]",
                          highlight=False, markup=False, soft_wrap=True)
    result = run(as_json, action, render)
    if result["problems"]:
        raise typer.Exit(1)


@remit_app.command("receipt")
def remit_receipt(bank: str = typer.Option(...), host_date: str = typer.Option(..., help="主机日期 YYYYMMDD"),
                  host_serial: str = typer.Option(..., help="主机流水号"), amount: str = typer.Option(...),
                  value_date: Optional[str] = typer.Option(None, "--on", "--value-date",
                                                           help="Value date YYYY-MM-DD, today by default (MNY-4)"),
                  serial: str = typer.Option("", help="业务流水号"),
                  bank_account: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """Money arrived at the centre's account: pays the document with this serial; the rest to suspense."""
    codes(bank=bank, host_date=host_date, host_serial=host_serial, bank_account=bank_account)
    optional_codes(serial=serial)
    run(as_json, lambda l: l.receive(bank, host_date, host_serial, bank_account or l.centre_bank_account, amount,
                                     value_day(l, value_date, "value_date"), serial))


@remit_app.command("backpay")
def remit_backpay(employer: str = typer.Option(...), period: str = typer.Option(...),
                  document_number: str = typer.Option(...), account_no: str = typer.Option(...),
                  base: str = typer.Option(...), employer_amount: str = typer.Option(...),
                  employee_amount: str = typer.Option(...), on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Register a back-payment (补缴) document for one member; it is credited when the money arrives."""
    from ledger.services.contributions import RemittanceLine

    codes(employer=employer, period=period, document_number=document_number, account_no=account_no)

    def action(ledger):
        line = RemittanceLine(1, account_no, Money.parse(base, "base", positive=True),
                              Money.parse(employer_amount, "employer_amount"),
                              Money.parse(employee_amount, "employee_amount"))
        result = ledger.register_remittance(employer, period, "back-payment", document_number, [line],
                                            value_day(ledger, on))
        if result["problem_rows"]:
            problem = result["problem_rows"][0]
            raise LedgerRuleError(problem["message"], field=problem["field"], rule=problem["rule"])
        return result
    run(as_json, action)


@remit_app.command("allocate")
def remit_allocate(bank: str = typer.Option(...), host_date: str = typer.Option(...), host_serial: str = typer.Option(...),
                   serial: str = typer.Option(..., help="The document's 业务流水号"), on: Optional[str] = OnOption,
                   as_json: bool = JsonOption):
    """Apply money held in suspense to a pending document."""
    codes(bank=bank, host_date=host_date, host_serial=host_serial, serial=serial)
    run(as_json, lambda l: l.allocate_suspense(bank, host_date, host_serial, serial, value_day(l, on)))


# -- withdrawals, payouts, corrections --------------------------------------------------------
@app.command()
def withdraw(account_no: str, kind: str = typer.Option(..., help="purchase, rent, retirement, ... (WD-1)"),
             amount: Optional[str] = typer.Option(None, help="Omit for closing kinds"),
             evidence: list[str] = typer.Option([], "--evidence", "-e", help="field=value, repeatable"),
             payee: Optional[str] = typer.Option(None), key: str = typer.Option(..., "--key", help="Idempotency key"),
             on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Withdraw (提取) with its kind and evidence; closing kinds pay balance + interest and close."""
    codes(account_no=account_no, kind=kind, key=key)
    names(payee=payee)
    fields = evidence_fields(evidence)
    run(as_json, lambda l: l.withdraw(account_no, kind, amount, value_day(l, on), fields, key, payee))


@payout_app.command("settle")
def payout_settle(serial: str, failed: bool = typer.Option(False, "--failed"), bank_reference: str = typer.Option(...),
                  on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Record the bank's answer to a payout (paid, or --failed and credited back)."""
    codes(serial=serial, bank_reference=bank_reference)
    run(as_json, lambda l: l.settle_payout(serial, not failed, value_day(l, on), bank_reference))


@app.command()
def reverse(account_no: str, posting_id: str, reason: str = typer.Option(...), on: Optional[str] = OnOption,
            as_json: bool = JsonOption):
    """Reverse (冲正) a posting: mirrored, original value date, interest adjusted (COR); --on is the correction day."""
    codes(account_no=account_no)
    names(posting_id=posting_id, reason=reason)
    run(as_json, lambda l: l.reverse(account_no, posting_id, value_day(l, on), reason))


@interest_app.command("settle")
def interest_settle(year_end: str = typer.Option(..., help="30 June of the interest year, YYYY-06-30"),
                    as_json: bool = JsonOption):
    """Settle the year's interest for every account (INT-1), value-dated 30 June."""
    day = parse_day(year_end, "year_end")

    def action(ledger):
        ids = ledger.account_ids()
        with progress_bar(len(ids), "settling") as bar:
            task = bar.add_task("settle", total=len(ids))
            return ledger.settle_interest(day, progress=lambda n: bar.advance(task, n))
    run(as_json, action)


# -- books ----------------------------------------------------------------------------------
@app.command("trial-balance")
def trial_balance(as_of: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """Trial balance (GL-3) as of a value date: per account on its normal side."""
    day = day_or_none(as_of, "as_of")

    def render(result):
        table = Table(title=f"trial balance as of {result['as_of'] or 'now'}")
        for column in ("account", "name", "side", "debits", "credits", "balance"):
            table.add_column(column, justify="right" if column in ("debits", "credits", "balance") else "left")
        for row in result["accounts"]:
            table.add_row(row["account"], f"{row['name_zh']} {row['name']}", row["side"], row["debits"],
                          row["credits"], row["balance"])
        console.print(table)
        console.print(f"debit side {result['debit_side_total']} = credit side {result['credit_side_total']}: "
                      f"{'balanced' if result['balanced'] else 'NOT BALANCED'}")
    run(as_json, lambda l: l.trial_balance(day).as_dict(), render)


@books_app.command("check")
def books_check(as_of: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """GL-2: every control account equals its sub-ledger."""
    day = day_or_none(as_of, "as_of")
    result = run(as_json, lambda l: l.check_books(day))
    if not result["ok"]:
        raise typer.Exit(4)


@books_app.command("suspense")
def books_suspense(as_of: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """Everything held in suspense (暂收款, 2102) item by item, beside the journal's 2102 balance (BNK-5)."""
    day = day_or_none(as_of, "as_of")

    def render(result):
        table = Table(title=f"suspense (2102) as of {result['as_of'] or 'now'}")
        for column in ("kind", "reference", "value date", "amount", "note"):
            table.add_column(column, justify="right" if column == "amount" else "left")
        for item in result["items"]:
            table.add_row(item["kind"], escape(item["reference"]), item["value_date"] or "", item["amount"],
                          escape(item.get("note", "")))
        console.print(table)
        console.print(f"items {result['total']} / journal 2102 {result['ledger_2102']}: "
                      f"{'agree' if result['ok'] else 'DIFFER'}")
    result = run(as_json, lambda l: l.suspense_items(day), render)
    if not result["ok"]:
        raise typer.Exit(4)


# -- loans --------------------------------------------------------------------------------------
@loan_app.command("schedule")
def loan_schedule(principal: str = typer.Option(...), months: str = typer.Option(...),
                  annual_rate: str = typer.Option(..., help="Percent, e.g. 2.85"),
                  method: str = typer.Option("equal-instalment", help="equal-instalment | equal-principal"),
                  disbursed_on: str = typer.Option(...), as_json: bool = JsonOption):
    """The repayment schedule (LN-3, LN-4): a pure calculation, no database."""
    from ledger.services.loans import schedule_rows

    day = parse_day(disbursed_on, "disbursed_on")
    codes(method=method)
    rows = schedule_rows(principal, count(months, "months", MONTHS_MAX, "LN-1"), annual_rate, method, day)

    def render(rows):
        table = Table(title=f"{principal} over {months} months at {annual_rate} % ({method})")
        for column in ("number", "due on", "principal", "interest", "payment", "outstanding"):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(str(row["number"]), row["due_on"], row["principal"], row["interest"], row["payment"],
                          row["outstanding"])
        console.print(table)
    emit(rows, as_json, render)


@loan_app.command("apply")
def loan_apply(id_number: str, principal: str = typer.Option(...), months: str = typer.Option(...),
               method: str = typer.Option("equal-instalment"), price: str = typer.Option(..., help="House price"),
               monthly_income: str = typer.Option(...), bank: str = typer.Option(..., help="Entrusted bank code"),
               second_home: bool = typer.Option(False), key: Optional[str] = typer.Option(None, "--key"),
               on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Apply for a loan; LN-1 eligibility is checked (one loan or application per couple)."""
    codes(id_number=id_number, method=method, bank=bank, key=key)
    term = count(months, "months", MONTHS_MAX, "LN-1")
    run(as_json, lambda l: l.apply_for_loan(id_number, principal, term, method, price, monthly_income,
                                            value_day(l, on), bank, second_home, key))


@loan_app.command("approve")
def loan_approve(loan_no: str, on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Approve an application."""
    codes(loan_no=loan_no)
    run(as_json, lambda l: l.approve_loan(loan_no, value_day(l, on)))


@loan_app.command("reject")
def loan_reject(loan_no: str, reason: str = typer.Option(...), on: Optional[str] = OnOption,
                as_json: bool = JsonOption):
    """Reject an application; the couple may apply again."""
    codes(loan_no=loan_no)
    names(reason=reason)
    run(as_json, lambda l: l.reject_loan(loan_no, value_day(l, on), reason))


@loan_app.command("disburse")
def loan_disburse(loan_no: str, payee: str = typer.Option("seller"), on: Optional[str] = OnOption,
                  as_json: bool = JsonOption):
    """Disburse at the rate in force on the value date (LN-2): Dr 1101 / Cr 2101 and a payout."""
    codes(loan_no=loan_no)
    names(payee=payee)
    run(as_json, lambda l: l.disburse_loan(loan_no, value_day(l, on), payee))


@loan_app.command("pay")
def loan_pay(loan_no: str, amount: str = typer.Option(...), reference: str = typer.Option(..., help="Bank reference"),
             source: str = typer.Option("counter", help="card | api | counter"), on: Optional[str] = OnOption,
             as_json: bool = JsonOption):
    """A repayment, allocated penalty → past interest → past principal → today's instalment (LN-5)."""
    codes(loan_no=loan_no, reference=reference, source=source)
    run(as_json, lambda l: l.pay_loan(loan_no, amount, value_day(l, on), source, reference))


@loan_app.command("prepay")
def loan_prepay(loan_no: str, principal: str = typer.Option(...), mode: str = typer.Option(..., help="shorten-term | reduce-payment"),
                reference: str = typer.Option(...), on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Partial prepayment (LN-6): the principal plus its interest since the last due date."""
    codes(loan_no=loan_no, mode=mode, reference=reference)
    run(as_json, lambda l: l.prepay_loan(loan_no, principal, value_day(l, on), mode, reference))


@loan_app.command("payoff")
def loan_payoff(loan_no: str, reference: Optional[str] = typer.Option(None), quote: bool = typer.Option(False),
                on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Pay off (结清) the loan, or --quote what it costs on the value date."""
    codes(loan_no=loan_no, reference=reference)
    if quote:
        run(as_json, lambda l: l.payoff_quote(loan_no, value_day(l, on)))
    else:
        if not reference:
            raise LedgerRuleError("a payoff carries its bank reference", field="reference", rule="LN-6")
        run(as_json, lambda l: l.pay_off_loan(loan_no, value_day(l, on), reference))


@loan_app.command("waive")
def loan_waive(scope: str = typer.Option(..., help="loan | employer | all"), start_on: str = typer.Option(...),
               end_on: str = typer.Option(...), loan_no: Optional[str] = typer.Option(None, "--loan"),
               employer: Optional[str] = typer.Option(None), on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Declare an overdue waiver (不作逾期处理, LN-8), also after its start; --on is the declaration day."""
    codes(scope=scope, loan=loan_no, employer=employer)
    start, end = parse_day(start_on, "start_on"), parse_day(end_on, "end_on")
    run(as_json, lambda l: l.declare_waiver(scope, start, end, value_day(l, on), loan_no, employer))


@loan_app.command("reverse-payment")
def loan_reverse_payment(loan_no: str, allocation: str = typer.Option(...), reason: str = typer.Option(...),
                         on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Reverse a loan payment (COR-3): what it paid is owed again from the original due dates."""
    codes(loan_no=loan_no)
    names(reason=reason)
    number = count(allocation, "allocation", ALLOCATIONS_MAX, "COR-3")
    run(as_json, lambda l: l.reverse_loan_payment(loan_no, number, value_day(l, on), reason))


@loan_app.command("suspense")
def loan_suspense(loan_no: str, apply: Optional[str] = typer.Option(None, help="apply this amount to the amount due"),
                  refund: Optional[str] = typer.Option(None, help="pay this amount back to the borrower"),
                  reference: Optional[str] = typer.Option(None, help="idempotency key of the apply or refund"),
                  on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Loan money held in suspense (暂收款, BNK-5); --apply it to the amount due or --refund it."""
    codes(loan_no=loan_no, reference=reference)
    if apply is not None and refund is not None:
        raise LedgerRuleError("one at a time: --apply or --refund", field="apply", rule="BNK-5")
    if (apply is not None or refund is not None) and not reference:
        raise LedgerRuleError("applying or refunding suspense carries its reference", field="reference",
                              rule="BNK-5")
    if apply is not None:
        run(as_json, lambda l: l.apply_loan_suspense(loan_no, apply, value_day(l, on), reference))
    elif refund is not None:
        run(as_json, lambda l: l.refund_loan_suspense(loan_no, refund, value_day(l, on), reference))
    else:
        run(as_json, lambda l: l.loan_suspense(loan_no, value_day(l, on)))


@loan_app.command("status")
def loan_status(loan_no: str, as_of: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """Outstanding principal, instalments paid / due / overdue, days past due, penalty, next due."""
    codes(loan_no=loan_no)
    day = day_or_none(as_of, "as_of") or today()
    run(as_json, lambda l: l.loan_status(loan_no, day))


@loan_app.command("delinquent")
def loan_delinquent(as_of: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """Delinquent loans by ageing bucket (1-30, 31-60, 61-90, 91+)."""
    day = day_or_none(as_of, "as_of") or today()
    run(as_json, lambda l: l.delinquent_loans(day))


@loan_app.command("daily-update")
def loan_daily_update(on: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """Interest falling due (Dr 1102 / Cr 4001) and LoanDefaulted for the day."""
    run(as_json, lambda l: l.daily_loan_update(run_day(l, on, "on")))


@loan_app.command("reprice")
def loan_reprice(on: str = typer.Option(..., help="1 January"), as_json: bool = JsonOption):
    """Move loans to the rate in force on 1 January for their tier (LN-2)."""
    run(as_json, lambda l: l.reprice_loans(run_day(l, on, "on")))


# -- monthly offset ---------------------------------------------------------------------------
@mandate_app.command("create")
def mandate_create(loan_no: str, spouse: bool = typer.Option(True, "--spouse/--no-spouse"),
                   on: Optional[str] = OnOption, as_json: bool = JsonOption):
    """Draft the offset mandate: borrower's account, then the spouse's (OFF-1)."""
    codes(loan_no=loan_no)
    run(as_json, lambda l: l.create_mandate(loan_no, value_day(l, on), spouse))


@mandate_app.command("sign")
def mandate_sign(loan_no: str, id_number: str = typer.Option(...), on: Optional[str] = OnOption,
                 as_json: bool = JsonOption):
    """A signer signs; effective from the 1st of the month after the last signature."""
    codes(loan_no=loan_no, id_number=id_number)
    run(as_json, lambda l: l.sign_mandate(loan_no, id_number, value_day(l, on)))


@mandate_app.command("cancel")
def mandate_cancel(loan_no: str, id_number: str = typer.Option(...), on: Optional[str] = OnOption,
                   as_json: bool = JsonOption):
    """Either signer cancels, from the 1st of the next month."""
    codes(loan_no=loan_no, id_number=id_number)
    run(as_json, lambda l: l.cancel_mandate(loan_no, id_number, value_day(l, on)))


def _render_offset(result: dict) -> None:
    table = Table(title=f"offset run through {result['through']}")
    for column in ("deduction date", "loans", "deducted", "already", "borrower funds", "spouse funds", "cards",
                   "debits", "skipped"):
        table.add_column(column, justify="right")
    for day in result["dates"]:
        skipped = ", ".join(f"{k} {v}" for k, v in day["skipped"].items()) or "-"
        table.add_row(day["deduction_on"], str(day["loans"]), str(day["deducted"]), str(day["already_done"]),
                      day["from_borrower_funds"], day["from_spouse_funds"], day["to_cards"],
                      str(day["debits_created"]), skipped)
    console.print(table)


@offset_app.command("run")
def offset_run(date_: Optional[str] = typer.Option(None, "--date", help="Run through this date (default today)"),
               workers: int = typer.Option(1, "--workers", help="Processes (PostgreSQL; SQLite runs 1)"),
               as_json: bool = JsonOption):
    """Run the offset for every deduction date since the last completed run (OFF-4), by hand."""
    def action(ledger):
        day = run_day(ledger, date_)
        with Progress(TextColumn("deducting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console) as bar:
            task = bar.add_task("offset", total=None)

            def advance(count: int, total: int) -> None:
                bar.update(task, total=total, advance=count)
            return ledger.run_offset(day, progress=advance, workers=workers)
    run(as_json, action, _render_offset)


@debit_app.command("list")
def debit_list(state: str = typer.Option("CREATED"), bank: Optional[str] = typer.Option(None), as_json: bool = JsonOption):
    """Card debits in a state (CREATED, SUBMITTED, FAILED, EXHAUSTED, COLLECTED, CANCELLED)."""
    codes(state=state, bank=bank)

    def action(ledger):
        return [{"serial": d.serial, "loan_no": d.loan_no, "amount": str(d.amount), "bank": d.bank, "state": d.state,
                 "deduction_on": d.deduction_on.isoformat(), "retries": d.retries,
                 "failure": d.failure and {k: str(v) for k, v in d.failure.items()}}
                for d in ledger.debits((state.upper(),), bank)]
    run(as_json, action)


@debit_app.command("retry")
def debit_retry(date_: Optional[str] = typer.Option(None, "--date"), as_json: bool = JsonOption):
    """Retry FAILED debits whose next attempt is due (OFF-3)."""
    run(as_json, lambda l: l.retry_debits(run_day(l, date_)))


@scheduler_app.command("run")
def scheduler_run(hour: int = typer.Option(6, min=0, max=23), minute: int = typer.Option(0, min=0, max=59)):
    """Run the scheduler in the foreground (logs to stderr); SIGTERM stops it cleanly."""
    import logging

    from scheduler.service import run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_forever(STATE["db"], str(STATE["policy"]) if STATE["policy"] else None, hour, minute)


@scheduler_app.command("run-day")
def scheduler_run_day(date_: Optional[str] = typer.Option(None, "--date"), as_json: bool = JsonOption):
    """Run the whole daily job once for a date, through the same code the scheduler calls."""
    from scheduler.jobs import run_day as run_daily_job

    run(as_json, lambda l: run_daily_job(l, run_day(l, date_)))


@app.command()
def demo(path: Path = typer.Option(Path("gjj-data/demo.sqlite3"), help="A fresh SQLite file for the demo centre"),
         members: int = typer.Option(1000, min=10, max=200_000), months: int = typer.Option(24, min=3, max=120),
         out: Path = typer.Option(Path("gjj-data/demo-out"), help="Folder for statements and bank files"),
         as_json: bool = JsonOption):
    """Build a sample centre and run it month by month; print a summary."""
    from ledger.demo import run_demo

    try:
        summary = run_demo(path, members=members, months=months, out=out, console=err_console)
    except EXPECTED_ERRORS as error:
        fail(error, as_json)
    emit(summary, as_json, _render_demo)


def _render_demo(s: dict) -> None:
    lending, recon = s["lending"], s["reconciliation"]
    console.print(Text.assemble((s["centre"], "bold"), f" demo in {s['store']}"), highlight=False)
    console.print(f"employers {s['employers']}, members {s['members']} ({s['married_couples']} couples), "
                  f"remittances received {s['bank_receipts']}, withdrawals {s['withdrawals']}", highlight=False)
    console.print(f"Σ balances {s['sum_of_balances']} = fund liability (2001) {s['fund_liability_2001']}",
                  highlight=False)
    console.print(f"loans {lending['loans']} ({lending['with_offset_mandate']} with 冲还贷 mandate), outstanding "
                  f"{lending['outstanding_principal']}; offset from borrower funds "
                  f"{lending['offset_source_split'].get('from_borrower_funds')}, spouse funds "
                  f"{lending['offset_source_split'].get('from_spouse_funds')}, cards "
                  f"{lending['offset_source_split'].get('to_cards')}", highlight=False)
    console.print(f"card debits {lending['card_debit_results']}; delinquent by bucket "
                  f"{lending['delinquent_by_bucket']}", highlight=False)
    table = Table(title="trial balance")
    for column in ("account", "name", "side", "balance"):
        table.add_column(column, justify="right" if column == "balance" else "left")
    for row in s["trial_balance"]["accounts"]:
        table.add_row(row["account"], f"{row['name_zh']} {row['name']}", row["side"], row["balance"])
    console.print(table)
    console.print(f"debit side {s['trial_balance']['debit_side']} = credit side {s['trial_balance']['credit_side']}; "
                  f"books check {'ok' if s['books_check']['ok'] else 'FAILED'}; audit verify "
                  f"{'ok' if s['audit_verify']['ok'] else 'FAILED'} ({s['audit_verify']['checked']} events)",
                  highlight=False)
    console.print(f"reconciliation {recon['statement']}: {recon['results']}; planted: {'; '.join(recon['planted'])}",
                  highlight=False)
    console.print(f"statements in {s['statements']['folder']}: {len(s['statements']['files'])} files "
                  "(JSON and PDF)", highlight=False)


def main() -> None:
    """Entry point: register the command groups that live in their own modules, then run."""
    import importlib

    cli = importlib.import_module("ledger.cli")  # the same module object even under ``python -m``
    importlib.import_module("ledger.cli_reports")  # projections, statement, audit (ADR 0008)
    importlib.import_module("ledger.cli_policy")  # policy check (ADR 0015)
    from ledger.cli_bank import register_bank_commands

    register_bank_commands(cli.app)  # bank export-debits|import, reconcile, serve (ADR 0009)
    cli.app()


if __name__ == "__main__":
    main()
