"""Careless and hostile input at ``gjj`` (issue 16): refused with ``field: message [RULE]``, exit 2, and the
store byte-identical; ``--on DATE`` on every command that records business.

The centre is a 200,000.00 loan at ICBC (``test_banking``), built through the services on a fixed
clock; the CLI's wall clock is pinned to the same day, 2025-02-17 (instalment 1 was due on the 15th).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterator

import pytest

from ledger.app import Ledger
from ledger.application import FixedClock
from ledger.money import Money
from ledger.sampledata import credit_code, resident_id
from ledger_state import assert_read_side_sound, assert_refused, gjj, pin_wall_clock, store_fingerprint
from test_banking import BANK, DEDUCTION_ON, banking_ledger, build_loan_centre

LOAN_PRINCIPAL = "200000.00"


@pytest.fixture
def centre(sqlite_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    ledger = banking_ledger(sqlite_url, clock)
    built = build_loan_centre(ledger, clock, ((BANK, LOAN_PRINCIPAL),))
    ledger.close()
    pin_wall_clock(monkeypatch, DEDUCTION_ON)
    yield {"url": sqlite_url, "loan": built.loans[0], "employer": built.employer, "borrower": built.borrowers[0],
           "account": built.accounts[0]}


def receipt(amount: str = "10.00", host_date: str = "20250217", host_serial: str = "X1", *extra: str) -> list[str]:
    return ["remit", "receipt", "--bank", BANK, "--host-date", host_date, "--host-serial", host_serial,
            "--amount", amount, *extra]


AMOUNTS_REFUSED = ["1e3", "1E+30", "1e30", "1,5", "1_000", "1 000", "NaN", "Infinity", "-5.00", "+5.00", "5.001",
                   "", "99999999999999999999.99", "0x10", "１０"]


@pytest.mark.parametrize("amount", AMOUNTS_REFUSED)
def test_every_amount_goes_through_the_one_parser(centre: dict[str, Any], amount: str) -> None:
    url, loan = centre["url"], centre["loan"]
    assert_refused(url, "amount", "MNY-1", "loan", "pay", loan, "--amount", amount, "--reference", "R1")
    assert_refused(url, "amount", "MNY-1", *receipt(amount))
    assert_refused(url, "amount", "MNY-1", "withdraw", centre["account"], "--kind", "other", "--amount", amount,
                   "-e", "purpose=装修", "--key", "k1")


def test_amounts_above_their_ceiling_are_refused_before_anything_is_written(centre: dict[str, Any]) -> None:
    url, loan = centre["url"], centre["loan"]
    error = assert_refused(url, "amount", "MNY-1", "loan", "pay", loan, "--amount", "9999999999999.99",
                           "--reference", "R1")
    assert "can be owed" in error["message"]
    status = gjj(url, "loan", "status", loan, "--json")[1]
    owed = Money(status["outstanding_principal"]) + Money(status["amount_due"])
    excess = Money("100000.00")  # policy limits.repayment_excess_max
    assert_refused(url, "amount", "MNY-1", "loan", "pay", loan, "--amount", str(owed + excess + Money("0.01")),
                   "--reference", "R2")
    assert_refused(url, "amount", "MNY-1", *receipt("500000000.01"))
    assert_refused(url, "amount", "MNY-1", "withdraw", centre["account"], "--kind", "other", "--amount",
                   "5000000.01", "-e", "purpose=装修", "--key", "k2")
    assert_read_side_sound(url)


@pytest.mark.parametrize(("option", "value", "field", "rule"), [
    ("--host-date", "20261340", "host_date", "BNK-2"),  # no such day
    ("--host-date", "20250230", "host_date", "BNK-2"),
    ("--host-date", "20260217", "host_date", "MNY-4"),  # a year ahead of the recording day
    ("--host-date", "2025-02-17", "host_date", "BNK-2"),
    ("--host-serial", "H\x00", "host_serial", "TXT-1"),
    ("--host-serial", "   ", "host_serial", "TXT-1"),
    ("--serial", "2025\u202e0217", "serial", "TXT-1"),
    ("--on", "2025-02-18", "value_date", "MNY-4"),
])
def test_a_receipt_with_a_bad_date_or_text_is_refused(centre: dict[str, Any], option: str, value: str, field: str,
                                                      rule: str) -> None:
    args = receipt()
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    assert_refused(centre["url"], field, rule, *args)


@pytest.mark.parametrize(("args", "field", "rule"), [
    (("loan", "status", "{loan}", "--as-of", "9999-12-31"), "as_of", "MNY-4"),
    (("loan", "status", "{loan}", "--as-of", "2025-02-30"), "as_of", "MNY-4"),
    (("balance", "{account}", "--as-of", "9999-12-31"), "as_of", "MNY-4"),
    (("loan", "delinquent", "--as-of", "0001-01-01"), "as_of", "MNY-4"),
    (("trial-balance", "--as-of", "yesterday"), "as_of", "MNY-4"),
    (("member", "open", "{new_member}", "--name", "名" * 201, "--employer", "{employer}"), "name", "TXT-1"),
    (("member", "open", "{new_member}", "--name", "\u202e伟张", "--employer", "{employer}"), "name", "TXT-1"),
    (("member", "open", "{new_member}", "--name", "张\x00伟", "--employer", "{employer}"), "name", "TXT-1"),
    (("member", "open", "{new_member}", "--name", " \u3000 ", "--employer", "{employer}"), "name", "TXT-1"),
    (("loan", "pay", "{loan}", "--amount", "10.00", "--reference", "R\u20661"), "reference", "TXT-1"),
    (("loan", "pay", "{loan}", "--amount", "10.00", "--reference", " "), "reference", "TXT-1"),
    (("loan", "pay", "{loan}", "--amount", "10.00", "--reference", "R" * 65), "reference", "TXT-1"),
    (("loan", "pay", "{loan}", "--amount", "10.00", "--reference", "R1", "--on", "2025-02-18"), "on", "MNY-4"),
    (("loan", "pay", "{loan}", "--amount", "10.00", "--reference", "R1", "--on", "2025-01-01"), "on", "MNY-4"),
    (("loan", "pay", "{loan}", "--amount", "10.00", "--reference", "R1", "--on", "20250217"), "on", "MNY-4"),
    (("withdraw", "{account}", "--kind", "other", "--amount", "1.00", "-e", "purpose=a\x07b", "--key", "k3"),
     "purpose", "TXT-1"),
    (("withdraw", "{account}", "--kind", "other", "--amount", "1.00", "-e", "purpose", "--key", "k3"),
     "evidence", "TXT-1"),
    (("withdraw", "{account}", "--kind", "other", "--amount", "1.00", "-e", "purpose=x", "--key", "k\n3"),
     "key", "TXT-1"),
    (("loan", "apply", "{borrower}", "--principal", "1000", "--months", "1e3", "--price", "2000",
      "--monthly-income", "9000", "--bank", BANK), "months", "LN-1"),
    (("loan", "reverse-payment", "{loan}", "--allocation", "-1", "--reason", "x"), "allocation", "COR-3"),
    (("employer", "open", "{new_employer}", "--name", "单位", "--bank-account", "6222\x00", "--on", "2025-02-17"),
     "bank_account", "TXT-1"),
    (("employer", "open", "{new_employer}", "--name", "单位", "--bank-account", "6222", "--ratio", "1e1"),
     "employer_ratio", "MNY-3"),
    (("account", "freeze", "{account}", "--authority", "court", "--document", "(2025)\u202e", "--amount", "1"),
     "document", "TXT-1"),
])
def test_hostile_text_dates_and_numbers_are_refused(centre: dict[str, Any], args: tuple[str, ...], field: str,
                                                    rule: str) -> None:
    names = {**centre, "new_member": resident_id(date(1992, 2, 2), 77, True), "new_employer": credit_code(77)}
    assert_refused(centre["url"], field, rule, *(arg.format(**names) if "{" in arg else arg for arg in args))


def test_a_loan_payment_reference_reused_with_another_source_is_a_conflict(centre: dict[str, Any]) -> None:
    url, loan = centre["url"], centre["loan"]
    code, first, output = gjj(url, "loan", "pay", loan, "--amount", "100.00", "--reference", "ICBC/20250217/9",
                              "--source", "counter", "--json")
    assert code == 0, output
    code, again, output = gjj(url, "loan", "pay", loan, "--amount", "100.00", "--reference", "ICBC/20250217/9",
                              "--source", "counter", "--json")
    assert code == 0 and again["repeat"] is True, output
    assert_refused(url, "idempotency_key", "IDEMPOTENCY", "loan", "pay", loan, "--amount", "100.00", "--reference",
                   "ICBC/20250217/9", "--source", "card")
    assert_read_side_sound(url)


def test_on_dates_the_business_and_the_clock_still_records_it(centre: dict[str, Any]) -> None:
    url, loan = centre["url"], centre["loan"]
    code, paid, output = gjj(url, "loan", "pay", loan, "--amount", "500.00", "--reference", "R-ON", "--on",
                             "2025-02-16", "--json")
    assert code == 0, output
    code, receipt_out, output = gjj(url, *receipt("12.34", "20250214", "X-ON", "--on", "2025-02-14", "--json"))
    assert code == 0 and receipt_out["suspense"] == "12.34", output
    ledger = Ledger(url)
    try:
        payment = ledger.loan(loan).payments[-1]
        assert payment["on"] == date(2025, 2, 16) and payment["reference"] == "R-ON"
        trial = ledger.trial_balance(date(2025, 2, 14)).as_dict()
        suspense = next(row for row in trial["accounts"] if row["account"] == "2102")
        assert suspense["balance"] == "12.34"  # value-dated on the 14th, recorded on the 17th
    finally:
        ledger.close()
    assert_read_side_sound(url)


RECORDING_COMMANDS = [
    ("employer", "open"), ("employer", "ratios"), ("employer", "defer"), ("member", "open"), ("member", "spouse"),
    ("account", "open"), ("account", "base"), ("account", "seal"), ("account", "unseal"), ("account", "freeze"),
    ("account", "unfreeze"), ("account", "court-deduct"), ("account", "close"), ("remit", "import"),
    ("remit", "receipt"), ("remit", "backpay"), ("remit", "allocate"), ("withdraw",), ("payout", "settle"),
    ("reverse",), ("loan", "apply"), ("loan", "approve"), ("loan", "reject"), ("loan", "disburse"), ("loan", "pay"),
    ("loan", "prepay"), ("loan", "payoff"), ("loan", "waive"), ("loan", "reverse-payment"), ("loan", "suspense"),
    ("offset", "mandate", "create"), ("offset", "mandate", "sign"), ("offset", "mandate", "cancel"),
]


@pytest.mark.parametrize("command", RECORDING_COMMANDS, ids=" ".join)
def test_every_command_that_records_business_takes_on(command: tuple[str, ...]) -> None:
    code, _payload, output = gjj("sqlite:///:memory:", *command, "--help")
    assert code == 0, output
    assert "--on" in output, f"gjj {' '.join(command)} has no --on"


def test_a_date_the_calendar_cannot_hold_is_refused_not_a_traceback(centre: dict[str, Any]) -> None:
    before = store_fingerprint(centre["url"])
    code, _payload, output = gjj(centre["url"], "loan", "status", centre["loan"], "--as-of", "9999-12-31")
    assert code == 2 and "Traceback" not in output, output
    assert "as_of: 9999-12-31 is outside 1900-01-01..2999-12-31 [MNY-4]" in output
    assert store_fingerprint(centre["url"]) == before


def test_text_that_looks_like_console_markup_is_printed_as_given(centre: dict[str, Any]) -> None:
    url = centre["url"]
    assert_refused(url, "amount", "MNY-1", "loan", "pay", centre["loan"], "--amount", "[/red]", "--reference", "R1")
    code, _payload, output = gjj(url, "loan", "pay", "[/x]", "--amount", "1.00", "--reference", "R1")
    assert code == 3 and "error: loan: no Loan [/x] [NOT-FOUND]" in output, output
    number = resident_id(date(1992, 2, 2), 78, True)
    code, _payload, output = gjj(url, "member", "open", number, "--name", "[bold]张[/x]", "--employer",
                                 centre["employer"])
    assert code == 0 and "[bold]张[/x]" in output, output
