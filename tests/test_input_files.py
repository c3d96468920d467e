"""BNK-3 for every file a command reads: a careless or hostile file is refused whole, never a traceback.

Every ``gjj`` command that reads a file — ``remit import`` (CSV 清册), ``bank import`` (BDC108 and
statements, national and CSV), ``reconcile`` (national and CSV), ``statement verify-certificate`` (JSON) and
the global ``--policy FILE`` (TOML) — is run on a truncated, a binary, a wrong-encoding, a wrong-field-count,
an empty and an oversized-field (> 128 KiB) version of a good file. Each must exit 2 with a
``field: message [RULE]`` line, without a traceback, and leave the store exactly as it was: the event log,
the audit chain head and the trial balance. The good files themselves are accepted (so the refusals are
the files' fault, not the test's).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import CliRunner

from bank_adapters.formats import (
    ResultFile,
    ResultLine,
    ResultSummary,
    StatementFile,
    StatementLine,
    write_result_file,
    write_result_file_csv,
    write_statement,
    write_statement_csv,
)
from ledger.app import Ledger
from ledger.cli import app
from ledger.cli_bank import register_bank_commands
from ledger.input_files import InputFileError
from ledger.money import Money
from ledger.sampledata import credit_code, resident_id
from ledger.services.contributions import CSV_FIELDS, read_remittance_csv

importlib.import_module("ledger.cli_reports")  # registers ``statement`` on the app
register_bank_commands(app)
runner = CliRunner()

CENTRE = "3100000001"
CENTRE_NAME = "某市住房公积金管理中心"
OVERSIZED_CHARS = 130 * 1024 + 1  # "a field over 128 KiB"
FIELD_MESSAGE_RULE = re.compile(r"\S: .*\[[A-Z][A-Z0-9]*(?:-[0-9]+)?\]\s*$", re.MULTILINE)
BINARY = bytes(range(256)) * 8


# -- the good files ---------------------------------------------------------------------------------
@dataclass
class Store:
    url: str
    employer: str
    accounts: list[str]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """An employer and two members opened today (the CLI's clock), so a good remittance list applies."""
    url = f"sqlite:///{tmp_path_factory.mktemp('input-files')}/ledger.sqlite3"
    centre = Ledger(url)
    try:
        employer = credit_code(4242)
        centre.open_employer(employer, "输入测试单位", "6222000011112222", centre.today(), ratio="12")
        accounts = []
        for index in range(2):
            number = resident_id(date(1990, 1, 1), 300 + index, index == 0)
            centre.open_member(number, f"职工{index}", employer, centre.today())
            accounts.append(centre.open_account(number, centre.today(), base="7777.00")["account_no"])
    finally:
        centre.close()
    return Store(url, employer, accounts)


def remittance_csv(store: Store) -> bytes:
    period = date.today().strftime("%Y-%m")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for account in store.accounts:
        writer.writerow([store.employer, period, "remittance", "汇缴IN1", account, "7777.00", "933.24", "933.24"])
    return buffer.getvalue().encode("utf-8")


def result_file() -> ResultFile:
    """A BDC108 answer to a batch this ledger never sent: it must be read, the money held (BNK-5)."""
    line = ResultLine(1, "156", "1", Money("2067.79"), "6217000000000000000", "张三", None, CENTRE, CENTRE_NAME,
                      None, "00000", "", date.today(), "IN000001", "", "")
    summary = ResultSummary.of([line], batch_on=date.today(), institution_code="310000",
                               batch_number="209901010000001", category="1", type_code="1", currency="156",
                               cash_remittance="1", memo="贷款扣款")
    return ResultFile(summary, (line,))


def statement_file() -> StatementFile:
    line = StatementLine(1, CENTRE, "IN000002", "", "", "来款单位", Money("50.00"), date.today(), "101500", None,
                         "", "来款", "156", "1", Money("50.00"), None, "", "", "", "", False, "", "")
    return StatementFile((line,))


def certificate_json() -> bytes:
    return json.dumps({"document": "contribution_certificate", "certificate_number": "ZM20260101-1-1",
                       "verification_code": "0" * 16, "member_name": "张三"}, ensure_ascii=False).encode("utf-8")


def policy_toml() -> bytes:
    from importlib import resources

    return resources.files("ledger.policies").joinpath("sample-city.toml").read_bytes()


# -- the damage -------------------------------------------------------------------------------------
def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2 - 1]


def reencoded(data: bytes, source: str, target: str) -> bytes:
    text = data.decode(source)
    return text.encode(target, errors="replace")  # the sample policy's ⚙ has no GBK form


def extra_field(data: bytes, separator: bytes, line_index: int = -1) -> bytes:
    """One more field on a line (by default the last line that has any)."""
    lines = data.split(b"\n")
    if line_index < 0:
        line_index = max(index for index, line in enumerate(lines) if line.strip())
    lines[line_index] = lines[line_index].rstrip(b"\r") + b"extra" + separator
    return b"\n".join(lines)


def oversized(data: bytes, needle: bytes) -> bytes:
    assert needle in data, needle
    return data.replace(needle, needle + b"X" * OVERSIZED_CHARS, 1)


@dataclass(frozen=True)
class FileKind:
    """One kind of file a command reads: its good bytes and how to run the command on a path."""

    good: Callable[[Store], bytes]
    command: Callable[[Store, Path], list[str]]
    encoding: str
    separator: bytes
    text_field: bytes
    ok_exit: int = 0
    surplus: Callable[[bytes], bytes] | None = None  # the "wrong field count" of a format without fields

    def damaged(self, store: Store, damage: str) -> bytes:
        data = self.good(store)
        other = "GBK" if self.encoding == "utf-8" else "utf-8"
        return {
            "truncated": lambda: truncated(data),
            "binary": lambda: BINARY,
            "wrong-encoding": lambda: reencoded(data, self.encoding, other),
            "wrong-field-count": lambda: self.surplus(data) if self.surplus else extra_field(data, self.separator),
            "empty": lambda: b"",
            "oversized-field": lambda: oversized(data, self.text_field),
        }[damage]()


def _bank_import(*options: str) -> Callable[[Store, Path], list[str]]:
    return lambda store, path: ["bank", "import", str(path), "--bank", "ICBC", *options, "--json"]


def _reconcile(*options: str) -> Callable[[Store, Path], list[str]]:
    return lambda store, path: ["reconcile", str(path), *options, "--json"]


KINDS: dict[str, FileKind] = {
    "remit-import": FileKind(remittance_csv, lambda s, p: ["remit", "import", str(p), "--json"], "utf-8", b",",
                             b"IN1"),
    "bank-import-BDC108": FileKind(lambda s: write_result_file(result_file()), _bank_import(), "GBK", b"|",
                                   "张三".encode("GBK")),
    "bank-import-BDC108-csv": FileKind(lambda s: write_result_file_csv(result_file()), _bank_import("--format", "csv"),
                                       "utf-8", b",", "张三".encode("utf-8")),
    "bank-import-statement": FileKind(lambda s: write_statement(statement_file()), _bank_import(), "GBK", b"|",
                                      "来款单位".encode("GBK"), ok_exit=0),
    "bank-import-statement-csv": FileKind(lambda s: write_statement_csv(statement_file()),
                                          _bank_import("--format", "csv"), "utf-8", b",", "来款单位".encode("utf-8")),
    "reconcile": FileKind(lambda s: write_statement(statement_file()), _reconcile(), "GBK", b"|",
                          "来款单位".encode("GBK")),
    "reconcile-csv": FileKind(lambda s: write_statement_csv(statement_file()), _reconcile("--format", "csv"), "utf-8",
                              b",", "来款单位".encode("utf-8")),
    "verify-certificate": FileKind(lambda s: certificate_json(),
                                   lambda s, p: ["statement", "verify-certificate", str(p), "--json"], "utf-8", b",",
                                   "张三".encode("utf-8"), ok_exit=4, surplus=lambda data: b"[" + data + b", 1]"),
    "policy": FileKind(lambda s: policy_toml(), lambda s, p: ["--policy", str(p), "init", "--json"], "utf-8", b"",
                       "某市住房公积金管理中心".encode("utf-8"), surplus=lambda data: b'surplus = "x"\n' + data),
}
DAMAGES = ("truncated", "binary", "wrong-encoding", "wrong-field-count", "empty", "oversized-field")


def fingerprint(url: str) -> tuple[Any, ...]:
    """What a refused file must leave as it was: the log, the audit chain head, the books, every balance."""
    centre = Ledger(url)
    try:
        head = centre.audit.head()
        balances = sorted((a.account_no, str(a.balance)) for a in centre.load_many(centre.account_ids()).values())
        return (centre.recorder.max_notification_id(), head.position, head.hash, centre.trial_balance().rows(),
                balances)
    finally:
        centre.close()


def gjj(store: Store, *args: str) -> tuple[int, str, Any]:
    result = runner.invoke(app, ["--db", store.url, *args])
    return result.exit_code, result.stdout + (result.stderr or ""), result.exception


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_importing_command_refuses_a_bad_file_whole_without_a_traceback(
        store: Store, tmp_path: Path, kind: str, damage: str) -> None:
    file_kind = KINDS[kind]
    path = tmp_path / f"{kind}-{damage}"
    path.write_bytes(file_kind.damaged(store, damage))
    before = fingerprint(store.url)
    code, output, exception = gjj(store, *file_kind.command(store, path))
    assert exception is None or isinstance(exception, SystemExit), output
    assert "Traceback" not in output
    assert code == 2, output
    assert FIELD_MESSAGE_RULE.search(output), output
    assert fingerprint(store.url) == before


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_good_files_are_accepted(store: Store, tmp_path: Path, kind: str) -> None:
    """The control: the same commands on the undamaged files do not refuse them."""
    file_kind = KINDS[kind]
    path = tmp_path / kind
    path.write_bytes(file_kind.good(store))
    code, output, exception = gjj(store, *file_kind.command(store, path))
    assert exception is None or isinstance(exception, SystemExit), output
    assert code == file_kind.ok_exit, output


# -- the remittance list (清册) in detail ------------------------------------------------------------
def _csv(*lines: str) -> bytes:
    return ("\n".join([",".join(CSV_FIELDS), *lines]) + "\n").encode("utf-8")


LINE = "91110105000000010W,2026-01,remittance,D1,1101050000000001,7777.00,933.24,933.24"


@pytest.mark.parametrize(("data", "expected"), [
    (_csv(LINE, LINE + ",9.99"), [(3, "field 9")]),
    (_csv(LINE, LINE.rsplit(",", 1)[0]), [(3, "employee_amount")]),
    (_csv(LINE, "ZZ" + LINE[2:]).replace(b"ZZ", "张三".encode("GBK")), [(3, "employer")]),
    (_csv(LINE).replace(b"2026-01", "二〇二六".encode("GBK")), [(2, "period")]),
    (_csv(LINE, LINE.replace("D1", "D" * OVERSIZED_CHARS)), [(3, "document_number")]),
    (_csv(LINE).replace(b"document_number", b"document_no"), [(1, "document_number")]),
    (b"", [(1, "employer")]),
    (BINARY, [(1, "employer")]),
    (b"\xff\xfe" + BINARY, [(1, "header")]),
])
def test_a_remittance_list_that_does_not_parse_is_refused_with_line_and_field(
        tmp_path: Path, data: bytes, expected: list[tuple[int, str]]) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    with pytest.raises(InputFileError) as refused:
        read_remittance_csv(path, [])
    assert [(problem.line, problem.field) for problem in refused.value.problems][:len(expected)] == expected
    assert refused.value.rule == "BNK-3"
    assert all(str(problem).endswith("[BNK-3]") for problem in refused.value.problems)


def test_a_remittance_list_with_one_long_line_is_refused_whole_and_nothing_applied(store: Store,
                                                                                  tmp_path: Path) -> None:
    """The good lines of a file with one line of more fields than the header are not applied either."""
    data = remittance_csv(store)
    path = tmp_path / "list.csv"
    path.write_bytes(extra_field(data, b","))
    before = fingerprint(store.url)
    code, output, _ = gjj(store, "remit", "import", str(path), "--json")
    assert code == 2, output
    error = json.loads(output[output.index("{"):output.rindex("}") + 1])["error"]
    assert (error["rule"], error["problems"][0]["line"], error["problems"][0]["field"]) == ("BNK-3", 3, "field 9")
    assert fingerprint(store.url) == before
