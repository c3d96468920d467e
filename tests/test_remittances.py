"""Remittances (汇缴), back-payments (补缴), deferrals (缓缴), bank receipts and suspense: CON-1..4, GL-1..3."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pytest

from ledger.aggregates.errors import (
    DeferralError,
    DocumentStateError,
    DocumentTotalError,
    IdempotencyConflictError,
)
from ledger.aggregates.base import LedgerRuleError
from ledger.money import Money, MoneyError

pytestmark = pytest.mark.storage

CENTRE_ACCOUNT = "3100000001"
BANK_LINE = "1001.3100000001"


def staff(fund: Any, count: int = 1, base: str = "7777.00", ratio: str = "12") -> tuple[str, list[str]]:
    employer = fund.employer(ratio=ratio, from_period="2024-01")
    return employer, [fund.member(employer, base=base, from_period="2024-01")[1] for _ in range(count)]


# -- CON-1 ----------------------------------------------------------------------------------------
def test_con1_7777_at_12_percent_is_933_24_per_share(fund: Any) -> None:
    employer, (account,) = staff(fund)
    lines = fund.lines(employer, "2024-06", [account])
    assert (lines[0].employer_amount, lines[0].employee_amount) == (Money("933.24"), Money("933.24"))
    wrong = [replace(lines[0], employer_amount=Money("933.00"), employee_amount=Money("933.00"))]
    result = fund.ledger.register_remittance(employer, "2024-06", "remittance", "D-yuan", wrong, fund.today)
    assert result["accepted"] == 0
    assert result["problem_rows"] == [{"line": 1, "field": "employer_amount", "rule": "CON-1",
                                       "message": result["problem_rows"][0]["message"]}]
    assert "933.24/933.24" in result["problem_rows"][0]["message"]
    fund.remit(employer, "2024-06", [account])
    assert fund.balance(account) == Money("1866.48")


def test_con1_yuan_rounding_gives_933_per_share(open_ledger: Any, fund_for: Callable[..., Any],
                                                make_policy: Callable[..., Any]) -> None:
    fund = fund_for(open_ledger(make_policy(contribution={"share_rounding": "yuan"})))
    employer, (account,) = staff(fund)
    lines = fund.lines(employer, "2024-06", [account])
    fen = [replace(lines[0], employer_amount=Money("933.24"), employee_amount=Money("933.24"))]
    refused = fund.ledger.register_remittance(employer, "2024-06", "remittance", "D-fen", fen, fund.today)
    assert refused["problem_rows"][0]["rule"] == "CON-1"
    paid = fund.remit(employer, "2024-06", [account])
    assert paid["document"]["total"] == "1866.00"
    assert fund.balance(account) == Money("1866.00")
    fund.assert_books()


# -- CON-4 documents -----------------------------------------------------------------------------------
def test_a_total_that_is_not_the_sum_of_the_lines_is_refused_whole(fund: Any) -> None:
    employer, accounts = staff(fund, 2)
    lines = fund.lines(employer, "2024-06", accounts)
    before = fund.fingerprint()
    with pytest.raises(DocumentTotalError) as refused:
        fund.ledger.register_remittance(employer, "2024-06", "remittance", "D1", lines, fund.today,
                                        declared_total=Money("3732.95"))
    assert refused.value.field == "total" and refused.value.rule == "CON-4"
    with pytest.raises(DocumentTotalError) as refused:
        fund.ledger.register_remittance(employer, "2024-06", "remittance", "D1", lines, fund.today,
                                        declared_total=Money("3732.96"), declared_count=3)
    assert refused.value.field == "count"
    assert fund.fingerprint() == before
    ok = fund.ledger.register_remittance(employer, "2024-06", "remittance", "D1", lines, fund.today,
                                         declared_total=Money("3732.96"), declared_count=2)
    assert (ok["accepted"], ok["total"]) == (2, "3732.96")


def test_a_bad_line_is_refused_with_its_line_number_field_and_rule(fund: Any) -> None:
    employer, accounts = staff(fund, 2)
    other_employer, (stranger,) = staff(fund)
    good, second = fund.lines(employer, "2024-06", accounts)
    foreign = fund.lines(other_employer, "2024-06", [stranger])[0]
    lines = [
        good,
        replace(second, line=2, base=Money("7000.00")),
        replace(good, line=3, account_no="9000000000000000"),
        replace(foreign, line=4),
        replace(second, line=5, employee_amount=Money("933.25")),
    ]
    result = fund.ledger.register_remittance(employer, "2024-06", "remittance", "D2", lines, fund.today)
    assert (result["accepted"], result["rejected"], result["total"]) == (1, 4, "1866.48")
    problems = {row["line"]: (row["field"], row["rule"]) for row in result["problem_rows"]}
    assert problems == {2: ("base", "CON-1"), 3: ("account_no", "ACC-1"), 4: ("account_no", "EMP-1"),
                        5: ("employer_amount", "CON-1")}
    receipt = fund.pay(result["total"], result["serial"])
    assert receipt["applied"] == "1866.48"
    assert [fund.balance(a) for a in accounts] == [Money("1866.48"), Money("0.00")]


def test_a_document_whose_every_line_is_bad_registers_nothing(fund: Any) -> None:
    employer, (account,) = staff(fund)
    lines = [replace(fund.lines(employer, "2024-06", [account])[0], base=Money("3000.00"))]
    before = fund.fingerprint()
    result = fund.ledger.register_remittance(employer, "2024-06", "remittance", "D3", lines, fund.today)
    assert (result["document"], result["accepted"], result["rejected"]) == (None, 0, 1)
    assert fund.fingerprint() == before


def test_con2_re_registering_the_same_content_is_a_no_op_other_content_is_refused(fund: Any) -> None:
    employer, accounts = staff(fund, 2)
    lines = fund.lines(employer, "2024-06", accounts)
    first = fund.ledger.register_remittance(employer, "2024-06", "remittance", "D4", lines, fund.today)
    before = fund.fingerprint()
    again = fund.ledger.register_remittance(employer, "2024-06", "remittance", "D4", lines, fund.today)
    assert again["repeat"] is True
    assert (again["serial"], again["total"], again["accepted"]) == (first["serial"], first["total"], 2)
    assert fund.fingerprint() == before
    with pytest.raises(DocumentStateError) as refused:
        fund.ledger.register_remittance(employer, "2024-06", "remittance", "D4", lines[:1], fund.today)
    assert refused.value.rule == "CON-2" and refused.value.field == "document_number"
    assert fund.fingerprint() == before
    # another kind or period is another key
    other = fund.ledger.register_remittance(employer, "2024-05", "remittance", "D4", lines, fund.today)
    assert other["serial"] != first["serial"]


def test_con2_a_period_is_credited_once_by_remittance(fund: Any) -> None:
    employer, (account,) = staff(fund)
    first = fund.register(employer, "2024-06", [account])
    second = fund.register(employer, "2024-06", [account])  # registered before the first was paid
    fund.pay(first["total"], first["serial"])
    late = fund.pay(second["total"], second["serial"])
    assert (late["applied"], late["suspense"]) == ("0.00", "1866.48")  # left in suspense, not credited twice
    assert fund.balance(account) == Money("1866.48")
    third = fund.register(employer, "2024-06", [account])
    assert third["problem_rows"][0]["rule"] == "CON-2"
    fund.assert_books()


def test_con2_a_back_payment_adds_at_most_the_difference(fund: Any) -> None:
    employer, (account,) = staff(fund)
    fund.remit(employer, "2024-06", [account])
    fund.ledger.set_base(account, "2024-06", "8000.00", fund.today)  # 调基 back to June: 960.00 per share
    line = fund.lines(employer, "2024-06", [account])[0]
    too_much = replace(line, employer_amount=Money("26.76"), employee_amount=Money("26.77"))
    refused = fund.ledger.register_remittance(employer, "2024-06", "back-payment", "B1", [too_much], fund.today)
    assert refused["problem_rows"][0]["rule"] == "CON-2"
    difference = replace(line, employer_amount=Money("26.76"), employee_amount=Money("26.76"))
    document = fund.ledger.register_remittance(employer, "2024-06", "back-payment", "B2", [difference], fund.today)
    assert document["total"] == "53.52"
    fund.pay(document["total"], document["serial"])
    assert fund.balance(account) == Money("1920.00")
    assert fund.account(account).credited["2024-06"] == {"remittance": Money("1866.48").amount,
                                                        "back-payment": Money("53.52").amount}
    history = fund.ledger.history(account)["lines"]
    assert [line["kind"] for line in history] == ["remittance", "back-payment"]


def test_two_back_payments_registered_before_either_is_paid_never_over_credit(fund: Any) -> None:
    """CON-2 at arrival too: both documents fit the room when registered; the second to be paid finds
    the period full, and its money waits in suspense (CON-4) instead of crediting the member twice."""
    employer, (account,) = staff(fund)
    fund.remit(employer, "2024-06", [account])
    fund.ledger.set_base(account, "2024-06", "8000.00", fund.today)
    line = fund.lines(employer, "2024-06", [account])[0]
    difference = replace(line, employer_amount=Money("26.76"), employee_amount=Money("26.76"))
    first = fund.ledger.register_remittance(employer, "2024-06", "back-payment", "B1", [difference], fund.today)
    second = fund.ledger.register_remittance(employer, "2024-06", "back-payment", "B2", [difference], fund.today)
    assert first["rejected"] == second["rejected"] == 0
    assert fund.pay(first["total"], first["serial"])["applied"] == "53.52"
    late = fund.pay(second["total"], second["serial"])
    assert (late["applied"], late["suspense"]) == ("0.00", "53.52")
    assert fund.balance(account) == Money("1920.00")                   # 960.00 + 960.00, not 1,973.52
    fund.assert_books()


def test_a_back_payment_may_pay_a_whole_missed_period(fund: Any) -> None:
    employer, (account,) = staff(fund)
    fund.remit(employer, "2024-03", [account], kind="back-payment")
    assert fund.balance(account) == Money("1866.48")
    assert fund.register(employer, "2024-03", [account], kind="back-payment")["problem_rows"][0]["rule"] == "CON-2"


# -- money arrives -------------------------------------------------------------------------------------
def test_members_are_credited_when_the_money_arrives_value_dated_on_arrival(fund: Any) -> None:
    employer, accounts = staff(fund, 2)
    document = fund.register(employer, "2024-06", accounts)
    assert [fund.balance(a) for a in accounts] == [Money("0.00")] * 2  # registered, not yet paid
    fund.on(date(2024, 6, 7))
    receipt = fund.pay(document["total"], document["serial"], value_date=date(2024, 6, 5))
    assert (receipt["applied"], receipt["suspense"], receipt["members_credited"]) == ("3732.96", "0.00", 2)
    for account in accounts:
        line = fund.ledger.history(account)["lines"][0]
        assert (line["value_date"], line["amount"], line["kind"]) == ("2024-06-05", "1866.48", "remittance")
        assert fund.account(account).balance_as_of(date(2024, 6, 4)) == Money("0.00")
    trial = fund.ledger.trial_balance()
    assert trial.balance("1001") == Money("3732.96") and trial.balance("2001") == Money("3732.96")
    assert fund.ledger.trial_balance(date(2024, 6, 4)).entries == 0
    fund.assert_books(date(2024, 6, 4), date(2024, 6, 5))
    assert fund.ledger.find(fund.ledger._document_by_serial(document["serial"]).id).state == "RECEIVED"


def test_a_bank_reference_is_applied_once(fund: Any) -> None:
    employer, (account,) = staff(fund)
    document = fund.register(employer, "2024-06", [account])
    first = fund.pay(document["total"], document["serial"], host_serial="H1")
    before = fund.fingerprint()
    again = fund.pay(document["total"], document["serial"], host_serial="H1")
    assert again == {**first, "repeat": True}
    assert fund.fingerprint() == before
    with pytest.raises(IdempotencyConflictError) as refused:
        fund.pay("1866.49", document["serial"], host_serial="H1")
    assert refused.value.field == "idempotency_key"
    assert fund.fingerprint() == before


def test_money_with_an_unknown_serial_or_none_goes_to_suspense(fund: Any) -> None:
    staff(fund)
    unknown = fund.pay("500.00", "209901010000001")
    nothing = fund.pay("250.00", "")
    assert (unknown["applied"], unknown["suspense"]) == ("0.00", "500.00")
    assert nothing["suspense"] == "250.00"
    trial = fund.ledger.trial_balance()
    assert trial.balance("2102") == Money("750.00") and trial.balance(BANK_LINE.split(".")[0]) == Money("750.00")
    fund.assert_books()


def test_money_short_of_the_total_waits_in_suspense_beyond_it_the_excess_does(fund: Any) -> None:
    employer, (account,) = staff(fund)
    document = fund.register(employer, "2024-06", [account])
    short = fund.pay("1866.47", document["serial"])
    assert (short["applied"], short["suspense"]) == ("0.00", "1866.47")
    assert fund.balance(account) == Money("0.00")
    over = fund.pay("2000.00", document["serial"])
    assert (over["applied"], over["suspense"]) == ("1866.48", "133.52")
    assert fund.balance(account) == Money("1866.48")
    assert fund.ledger.trial_balance().balance("2102") == Money("1999.99")  # 1,866.47 + 133.52
    fund.assert_books()


def test_suspense_is_allocated_later_and_the_rest_refunded(fund: Any) -> None:
    employer, (account,) = staff(fund)
    fund.pay("2000.00", "", host_serial="S1")  # arrives before the document is registered
    fund.on(date(2024, 6, 3))
    document = fund.register(employer, "2024-06", [account])
    allocated = fund.ledger.allocate_suspense("ICBC", "20240601", "S1", document["serial"], fund.today)
    assert (allocated["allocated"], allocated["suspense"]) == ("1866.48", "133.52")
    line = fund.ledger.history(account)["lines"][0]
    assert (line["value_date"], line["amount"]) == ("2024-06-03", "1866.48")
    trial = fund.ledger.trial_balance()
    assert (trial.balance("2102"), trial.balance("2001")) == (Money("133.52"), Money("1866.48"))
    fund.assert_books(date(2024, 6, 1), date(2024, 6, 3))

    repeat = fund.ledger.allocate_suspense("ICBC", "20240601", "S1", document["serial"], fund.today)
    assert repeat == {**allocated, "repeat": True}
    fund.pay("3000.00", "", host_serial="S3")
    with pytest.raises(DocumentStateError):  # the document is paid already
        fund.ledger.allocate_suspense("ICBC", "20240603", "S3", document["serial"], fund.today)
    fund.ledger.refund_suspense("ICBC", "20240603", "S3", "3000.00", "付款单位", fund.today)
    refunded = fund.ledger.refund_suspense("ICBC", "20240601", "S1", "133.52", "付款单位", fund.today)
    assert refunded["suspense"] == "0.00"
    assert fund.ledger.trial_balance().balance("2101") == Money("3133.52")
    fund.assert_books()
    for payout in fund.ledger.pending_payouts():
        fund.ledger.settle_payout(payout.serial, True, fund.today, f"ICBC/20240603/P{payout.serial}")
    trial = fund.ledger.trial_balance()
    assert (trial.balance("2101"), trial.balance("2102"), trial.balance("1001")) == (
        Money("0.00"), Money("0.00"), Money("1866.48"))
    fund.assert_books()


def test_suspense_that_does_not_cover_the_document_is_not_allocated(fund: Any) -> None:
    employer, (account,) = staff(fund)
    fund.pay("1000.00", "", host_serial="S2")
    document = fund.register(employer, "2024-06", [account])
    before = fund.fingerprint()
    with pytest.raises(DocumentTotalError):
        fund.ledger.allocate_suspense("ICBC", "20240601", "S2", document["serial"], fund.today)
    with pytest.raises(LedgerRuleError):
        fund.ledger.refund_suspense("ICBC", "20240601", "S2", "1000.01", "付款单位", fund.today)
    with pytest.raises(MoneyError):
        fund.ledger.refund_suspense("ICBC", "20240601", "S2", "0", "付款单位", fund.today)
    assert fund.fingerprint() == before


def test_a_receipt_with_bad_money_is_refused_naming_the_field(fund: Any) -> None:
    staff(fund)
    before = fund.fingerprint()
    for amount in ("0.00", "-5.00", "12.345", "abc"):
        with pytest.raises(MoneyError) as refused:
            fund.pay(amount)
        assert refused.value.field == "amount"
    assert fund.fingerprint() == before


# -- CON-3 deferral ------------------------------------------------------------------------------------
def test_con3_a_deferral_counts_its_periods_as_paid_until_the_deadline(fund: Any) -> None:
    employer, _ = staff(fund)
    result = fund.ledger.defer(employer, "2024-03", "2024-05", fund.today)
    assert result["backpay_deadline"] == "2025-05-01"  # last period + 12 months ⚙
    deferring = fund.ledger.employer(employer)
    assert deferring.state == "03"
    assert deferring.is_deferred("2024-04", date(2025, 5, 1))
    assert not deferring.is_deferred("2024-04", date(2025, 5, 2))  # still unpaid after the deadline: a gap
    assert not deferring.is_deferred("2024-06", date(2024, 7, 1))
    assert not deferring.is_deferred("2024-02", date(2024, 7, 1))


def test_con3_a_deferral_names_first_and_last_periods_in_order(fund: Any) -> None:
    employer, _ = staff(fund)
    before = fund.fingerprint()
    with pytest.raises(DeferralError) as refused:
        fund.ledger.defer(employer, "2024-05", "2024-03", fund.today)
    assert refused.value.field == "last_period"
    for first, last in (("2024-13", "2024-12"), ("2024-01", "abc"), ("2024-1", "2024-02")):
        with pytest.raises(LedgerRuleError):
            fund.ledger.defer(employer, first, last, fund.today)
    assert fund.fingerprint() == before and fund.ledger.employer(employer).state == "01"


def test_con3_deferred_periods_are_back_paid_later(fund: Any) -> None:
    employer, (account,) = staff(fund)
    fund.ledger.defer(employer, "2024-03", "2024-05", fund.today)
    for period in ("2024-03", "2024-04", "2024-05"):
        fund.remit(employer, period, [account], kind="back-payment")
    assert fund.balance(account) == Money("5599.44")
    fund.assert_books()


# -- the CSV list (清册) ----------------------------------------------------------------------------------
def test_a_csv_list_reports_bad_lines_and_applies_the_rest_once(fund: Any, tmp_path: Path) -> None:
    employer, accounts = staff(fund, 2)
    header = "employer,period,kind,document_number,account_no,base,employer_amount,employee_amount\n"
    rows = [
        f"{employer},2024-06,remittance,C1,{accounts[0]},7777.00,933.24,933.24",
        f"{employer},2024-06,remittance,C1,{accounts[1]},7777.00,933.245,933.24",
        f"{employer},2024-06,remittance,C1,{accounts[1]},7777.00,,933.24",
        f"{employer},2024-6,remittance,C1,{accounts[1]},7777.00,933.24,933.24",
    ]
    path = tmp_path / "list.csv"
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    report = fund.ledger.import_remittances(path, fund.today)
    assert report["lines_read"] == 4 and report["lines_accepted"] == 1
    problems = {p["line"]: (p["field"], p["rule"]) for p in report["problems"]}
    assert problems == {3: ("employer_amount", "MNY-1"), 4: ("employer_amount", "CON-4"), 5: ("period", "CON-4")}
    before = fund.fingerprint()
    again = fund.ledger.import_remittances(path, fund.today)
    assert again["lines_accepted"] == 0 and again["documents"][0]["repeat"] is True
    assert fund.fingerprint() == before


# -- the import's batch boundary (issue 14: several documents a transaction) -----------------------------
def _list_of(employer: str, accounts: list[str], periods: list[str]) -> str:
    header = "employer,period,kind,document_number,account_no,base,employer_amount,employee_amount\n"
    return header + "".join(f"{employer},{period},remittance,B{period},{account},7777.00,933.24,933.24\n"
                             for period in periods for account in accounts)


def test_a_crash_between_import_batches_leaves_a_reimport_that_applies_exactly_the_rest(
        fund: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ledger.services.contributions as contributions
    from ledger.aggregates.documents import RemittanceDocument

    employer, accounts = staff(fund, 2)
    periods = ["2024-03", "2024-04", "2024-05", "2024-06", "2024-07"]
    path = tmp_path / "list.csv"
    path.write_text(_list_of(employer, accounts, periods), encoding="utf-8")
    monkeypatch.setattr(contributions, "IMPORT_BATCH_LINES", 4)  # two documents of two lines a batch
    ledger, saves, crash = fund.ledger, [], {"at": 2}
    real_save = ledger.save

    def crashing_save(*objs: Any, **kwargs: Any) -> Any:
        if any(isinstance(o, RemittanceDocument) for o in objs):
            saves.append([o.period for o in objs if isinstance(o, RemittanceDocument)])
            if len(saves) == crash["at"]:
                raise RuntimeError("the process died between two batches")
        return real_save(*objs, **kwargs)

    monkeypatch.setattr(ledger, "save", crashing_save)
    with pytest.raises(RuntimeError):
        ledger.import_remittances(path, fund.today)
    assert saves == [["2024-03", "2024-04"], ["2024-05", "2024-06"]]

    def registered() -> dict[str, Any]:
        found = {p: ledger.find(RemittanceDocument.create_id(employer, p, "remittance", f"B{p}")) for p in periods}
        return {p: d for p, d in found.items() if d is not None}

    assert sorted(registered()) == ["2024-03", "2024-04"]  # the first batch committed, whole
    crash["at"] = None
    again = ledger.import_remittances(path, fund.today)
    assert [(d["period"], bool(d.get("repeat")), d["accepted"]) for d in again["documents"]] == [
        ("2024-03", True, 2), ("2024-04", True, 2), ("2024-05", False, 2), ("2024-06", False, 2),
        ("2024-07", False, 2)]
    assert again["lines_accepted"] == 6 and again["problems"] == []
    documents = registered()
    assert sorted(documents) == periods and all(d.version == 1 for d in documents.values())
    assert len({d.serial for d in documents.values()}) == len(periods)  # one serial each, none twice
    before = fund.fingerprint()
    third = ledger.import_remittances(path, fund.today)
    assert third["lines_accepted"] == 0 and all(d["repeat"] for d in third["documents"])
    assert fund.fingerprint() == before
    for period in periods:  # each document paid once credits each member once
        fund.pay(documents[period].total, documents[period].serial)
    assert all(fund.balance(a) == Money("1866.48").times(len(periods)) for a in accounts)
    fund.assert_books()
    report = ledger.audit.verify()
    assert report.ok, report.problems


def test_import_batches_hold_whole_documents_and_a_refused_one_does_not_stop_the_others(
        fund: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ledger.services.contributions as contributions

    assert [[len(d[1]) for d in b] for b in contributions._batches(
        [("a", [1] * 3), ("b", [1] * 9), ("c", [1]), ("d", [1] * 2)], 4)] == [[3], [9], [1, 2]]
    employer, accounts = staff(fund, 2)
    path = tmp_path / "list.csv"
    path.write_text(_list_of(employer, accounts, ["2024-05"]), encoding="utf-8")
    assert fund.ledger.import_remittances(path, fund.today)["lines_accepted"] == 2
    # the same document number with other lines is refused whole; the other document of the batch is applied
    monkeypatch.setattr(contributions, "IMPORT_BATCH_LINES", 100)
    text = _list_of(employer, accounts[:1], ["2024-05"]) + _list_of(employer, accounts, ["2024-06"]).split("\n", 1)[1]
    path.write_text(text, encoding="utf-8")
    report = fund.ledger.import_remittances(path, fund.today)
    assert report["lines_accepted"] == 2
    assert [(p["line"], p["rule"]) for p in report["problems"]] == [(2, "CON-2")]
    assert [d["period"] for d in report["documents"]] == ["2024-06"]


def test_an_oversized_document_in_an_import_is_refused_whole_and_the_rest_applied(
        fund: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ledger.services.contributions as contributions

    employer, accounts = staff(fund, 3)
    monkeypatch.setattr(contributions, "DOCUMENT_LINES_MAX", 2)
    text = _list_of(employer, accounts, ["2024-05"]) + _list_of(employer, accounts[:2], ["2024-06"]).split("\n", 1)[1]
    path = tmp_path / "list.csv"
    path.write_text(text, encoding="utf-8")
    report = fund.ledger.import_remittances(path, fund.today)
    assert report["lines_accepted"] == 2 and [d["period"] for d in report["documents"]] == ["2024-06"]
    assert [(p["line"], p["field"]) for p in report["problems"]] == [(2, "lines"), (3, "lines"), (4, "lines")]
