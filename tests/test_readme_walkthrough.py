"""The README's walkthrough ("Using gjj"), read from README.md itself and run step by step in a fresh store.

Every ```sh block of the section is split into commands (``\\`` continues a line, ``;`` separates commands,
``#`` starts a comment, ``cat > FILE <<EOF`` … ``EOF`` writes a file) and each ``gjj`` command runs through
the real entry point (``ledger.cli.main``'s app, in process) and must exit 0, so the README cannot rot.
What the test does differently from a person at a shell, and why:

- S1 the store: on SQLite the README's own ``GJJ_DATABASE_URL`` (a relative path, in a fresh folder); on
  PostgreSQL a scratch schema instead (the README shows that URL commented out).
- S2 ``. .venv/bin/activate`` is skipped: the CLI is called in process.
- S3 ``$(…)`` runs in ``/bin/sh`` (the README only asks ``date`` for ``$TODAY``); ``$NAME`` and
  ``${NAME}`` expand from the variables the walkthrough set.
- S4 ``DK…`` stands for the loan number: it is replaced by the one ``gjj loan apply`` printed.
- S5 before the loans block the six months before the current one are remitted and received for the
  README's member with the same commands the first block shows (``gjj remit import`` of a list for those
  periods, ``gjj remit receipt`` per document), because LN-1 wants those months credited and the README
  cannot name them literally. (Dated business, ``--on``, cannot stand in for this: MNY-4 limits a value
  date to k ⚙ = 31 days back.)
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Using `gjj`"
SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
HEREDOC = re.compile(r"^cat > (\S+) <<('?)EOF\2$")
COMMENT = re.compile(r"(?:^|\s)#.*$")
COMMAND_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
LOAN_NUMBER = re.compile(r"loan_no\W+(DK\d+)")
LOAN_PLACEHOLDER = "DK…"
CHINA = timezone(timedelta(hours=8))
STEPS_MAX = 200
CREDITED_MONTHS = 6  # LN-1
runner = CliRunner()


# -- reading the README -------------------------------------------------------------------------------
@dataclass
class Step:
    """One command of the walkthrough (or a file it writes), with the README line it starts on."""

    line: int
    text: str
    heredoc: tuple[str, str, bool] | None = None  # (file, body, expand variables)


def walkthrough_blocks(readme: str) -> list[list[Step]]:
    """The steps of each ```sh block of the "Using gjj" section, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start:end if end > 0 else len(readme)]
    first_line = readme[:start].count("\n") + 1
    blocks = []
    for match in SH_BLOCK.finditer(section):
        block_line = first_line + section[:match.start(1)].count("\n")
        blocks.append(_steps(match.group(1), block_line))
    return blocks


def _steps(block: str, first_line: int) -> list[Step]:
    lines = block.split("\n")
    steps: list[Step] = []
    index = 0
    while index < len(lines):
        number, text = first_line + index, lines[index]
        heredoc = HEREDOC.match(text.strip())
        if heredoc:
            body_end = lines.index("EOF", index + 1)
            body = "\n".join(lines[index + 1:body_end]) + "\n"
            steps.append(Step(number, text, (heredoc.group(1), body, heredoc.group(2) != "'")))
            index = body_end + 1
            continue
        while text.endswith("\\") and index + 1 < len(lines):
            index += 1
            text = text[:-1].rstrip() + " " + lines[index].strip()
        text = COMMENT.sub("", text).strip()
        if text:
            steps.append(Step(number, text))
        index += 1
    return steps


# -- running it --------------------------------------------------------------------------------------
@dataclass
class Shell:
    """Just enough of a shell for the walkthrough: variables, ``;``, ``>``, heredocs, and ``gjj`` in process."""

    folder: Path
    store_url: str | None  # None: the README's own URL (S1)
    variables: dict[str, str] = field(default_factory=dict)
    loan_number: str = ""
    ran: list[str] = field(default_factory=list)

    def run(self, step: Step) -> None:
        if step.heredoc:
            name, body, expand = step.heredoc
            (self.folder / name).write_text(self.expand(body) if expand else body, encoding="utf-8")
            return
        for command in self.commands(step.text):
            self.command(step, command)

    def expand(self, text: str) -> str:
        text = COMMAND_SUBSTITUTION.sub(lambda m: subprocess.run(  # S3
            ["/bin/sh", "-c", m.group(1)], capture_output=True, text=True, check=True).stdout.strip(), text)
        text = VARIABLE.sub(lambda m: self.variables[m.group(1) or m.group(2)], text)
        return text.replace(LOAN_PLACEHOLDER, self.loan_number or LOAN_PLACEHOLDER)  # S4

    def commands(self, text: str) -> list[list[str]]:
        lexer = shlex.shlex(self.expand(text), posix=True, punctuation_chars=";>")
        lexer.whitespace_split = True
        commands: list[list[str]] = [[]]
        for token in lexer:
            if token == ";":
                commands.append([])
            else:
                commands[-1].append(token)
        return [command for command in commands if command]

    def command(self, step: Step, words: list[str]) -> None:
        if words[0] in (".", "source"):
            return  # S2
        if words[0] == "export":
            words = words[1:]
        while words and re.fullmatch(r"\w+=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            self.variables[name] = value
        if not words:
            return
        assert words[0] == "gjj", f"README line {step.line}: only gjj commands run here: {step.text}"
        output_file = None
        if ">" in words:
            at = words.index(">")
            words, output_file = words[:at], words[at + 1]
        output = self.gjj(step, words[1:])
        if output_file:
            (self.folder / output_file).write_text(output, encoding="utf-8")

    def gjj(self, step: Step, args: list[str]) -> str:
        assert len(self.ran) < STEPS_MAX
        url = self.store_url or self.variables["GJJ_DATABASE_URL"]
        result = runner.invoke(cli_app(), args, env={"GJJ_DATABASE_URL": url})
        self.ran.append(" ".join(args))
        shown = f"README line {step.line}: gjj {' '.join(args)}\n{result.stdout}{result.stderr or ''}"
        assert result.exception is None or isinstance(result.exception, SystemExit), shown
        assert result.exit_code == 0, shown
        if args[:2] == ["loan", "apply"]:
            found = LOAN_NUMBER.search(result.stdout)
            assert found, shown
            self.loan_number = found.group(1)
        return result.stdout


def cli_app() -> Any:
    """The app as ``gjj`` (``ledger.cli.main``) assembles it: every command group registered."""
    cli = importlib.import_module("ledger.cli")
    importlib.import_module("ledger.cli_reports")
    importlib.import_module("ledger.cli_policy")
    from ledger.cli_bank import register_bank_commands

    register_bank_commands(cli.app)
    return cli.app


# -- S5: the months a loan needs ------------------------------------------------------------------------
def months_before_now(count: int) -> list[str]:
    today = datetime.now(CHINA).date()
    index = today.year * 12 + today.month - 1
    return [f"{(index - k) // 12:04d}-{(index - k) % 12 + 1:02d}" for k in range(count, 0, -1)]


def credit_months_before_now(shell: Shell) -> None:
    """Remit and receive the six months before this one for the README's member (the one of the list the first
    block wrote), with the README's commands."""
    header, line, *_ = (shell.folder / "remittance.csv").read_text(encoding="utf-8").splitlines()
    employer, first_period, _kind, _number, account, base, employer_amount, employee_amount = line.split(",")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header.split(","))
    periods = [p for p in months_before_now(CREDITED_MONTHS) if p > first_period]  # the first block's is paid
    for period in periods:
        writer.writerow([employer, period, "remittance", f"HJ{period.replace('-', '')}", account, base,
                         employer_amount, employee_amount])
    (shell.folder / "six-months.csv").write_text(buffer.getvalue(), encoding="utf-8")
    step = Step(0, "S5")
    report = json.loads(shell.gjj(step, ["remit", "import", "six-months.csv", "--json"]))
    assert report["problems"] == [] and len(report["documents"]) == len(periods), report
    for index, document in enumerate(report["documents"]):
        shell.gjj(step, ["remit", "receipt", "--bank", "ICBC", "--host-date", shell.variables["TODAY"],
                         "--host-serial", f"S5-{index}", "--amount", document["total"], "--serial",
                         document["serial"]])


# -- the test -----------------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def walkthrough_store(request: pytest.FixtureRequest) -> Any:
    if request.param == "sqlite":
        yield None  # S1: the README's own URL
        return
    from conftest import drop_scratch, postgres_reachable_or_fail, scratch_postgres_url

    postgres_reachable_or_fail()
    url = scratch_postgres_url()
    try:
        yield url
    finally:
        drop_scratch(url)


def test_the_readme_walkthrough_runs_step_by_step(walkthrough_store: str | None, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    readme = README.read_text(encoding="utf-8")
    blocks = walkthrough_blocks(readme)
    assert len(blocks) >= 2, "the walkthrough: fund accounts, then loans"
    monkeypatch.chdir(tmp_path)
    shell = Shell(tmp_path, walkthrough_store)
    for step in blocks[0]:
        shell.run(step)
    credit_months_before_now(shell)
    for block in blocks[1:]:
        for step in block:
            shell.run(step)
    assert shell.loan_number.startswith("DK")
    for command in ("init", "remit import", "remit receipt", "loan disburse", "reconcile", "audit check"):
        assert any(ran.startswith(command) for ran in shell.ran), command


def test_the_walkthrough_reader_splits_steps_as_a_shell_would() -> None:
    steps = _steps("a \\\n  b # c\n# only a comment\ncat > f.csv <<'EOF'\nx,$Y\nEOF\nd; e\n", 10)
    assert [(s.line, s.text) for s in steps] == [(10, "a b"), (13, "cat > f.csv <<'EOF'"), (16, "d; e")]
    assert steps[1].heredoc == ("f.csv", "x,$Y\n", False)
    shell = Shell(Path("."), None, {"TODAY": "20261206"})
    assert shell.commands("gjj x ${TODAY}0000001 --json > out.json; gjj y $TODAY") == [
        ["gjj", "x", "202612060000001", "--json", ">", "out.json"], ["gjj", "y", "20261206"]]


def test_the_readme_names_valid_identities_and_stands_alone() -> None:
    """EMP-1 / ACC-4: the README's credit code and resident id pass their own check digits (GB 32100, GB
    11643); it names no file outside the repository; its reconcile has no --bank option."""
    from stdnum.cn import ric, uscc

    readme = README.read_text(encoding="utf-8")
    codes = set(re.findall(r"\b9\d{16}[0-9A-Z]\b", readme))
    ids = set(re.findall(r"\b\d{17}[\dX]\b", readme)) - codes
    assert codes and all(uscc.is_valid(code) for code in codes), codes
    assert ids and all(ric.is_valid(number) for number in ids), ids
    assert "../" not in readme and "SPEC.md" not in readme and "BANK-FORMATS.md" not in readme
    assert not re.search(r"gjj reconcile [^\n]*--bank", readme)
    for link in re.findall(r"`((?:docs|ledger|bank_adapters|tests|scripts)/[\w./-]+)`", readme):
        assert (README.parent / link).exists(), link
    assert os.path.exists(README.parent / "docs" / "rules.md")
