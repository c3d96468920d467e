"""The bank HTTP API (BNK-1, BNK-2, MNY-1): keys, own loans only, idempotent posts, strict money, no 5xx.

The app runs in process (Starlette's test client; schemathesis over ASGI) on the centre of
``test_banking``: three loans serviced by ICBC with card debits waiting. ICBC holds one key, CCB
another; CCB may touch none of ICBC's loans.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import datetime
from typing import Any, Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from ledger.api import create_app, parse_bank_keys
from ledger.application import CHINA_TZ, FixedClock
from test_banking import BANK, DEDUCTION_ON, LoanCentre, banking_ledger, build_loan_centre

KEYS = {"icbc-secret-key": BANK, "ccb-secret-key": "CCB"}
ICBC = {"X-Bank-Key": "icbc-secret-key"}
CCB = {"X-Bank-Key": "ccb-secret-key"}
SCHEMATHESIS_EXAMPLES_MAX = 40


def api_for(url: str, clock: FixedClock) -> TestClient:
    return TestClient(create_app(lambda: banking_ledger(url, clock), KEYS))


@pytest.fixture
def served(store_url: str, clock: FixedClock) -> Iterator[tuple[TestClient, LoanCentre]]:
    ledger = banking_ledger(store_url, clock)
    centre = build_loan_centre(ledger, clock)
    with api_for(store_url, clock) as client:
        yield client, centre
    ledger.close()


@pytest.fixture
def sqlite_served(sqlite_url: str, clock: FixedClock) -> Iterator[tuple[TestClient, LoanCentre]]:
    ledger = banking_ledger(sqlite_url, clock)
    centre = build_loan_centre(ledger, clock)
    with api_for(sqlite_url, clock) as client:
        yield client, centre
    ledger.close()


def repayment(loan_no: str, amount: Any = "100.00", reference: str = "API0001") -> dict[str, Any]:
    return {"loan_no": loan_no, "amount": amount, "host_date": f"{DEDUCTION_ON:%Y%m%d}", "bank_reference": reference}


def test_keys_are_parsed_from_text() -> None:
    assert parse_bank_keys("ICBC:k1, CCB:k2\n# comment\nBOC:k3") == {"k1": "ICBC", "k2": "CCB", "k3": "BOC"}
    with pytest.raises(ValueError):
        parse_bank_keys("ICBC")


def test_a_bank_needs_its_key_and_sees_only_its_own_loans(sqlite_served: Any) -> None:
    client, centre = sqlite_served
    loan_no = centre.loans[0]
    assert client.get(f"/v1/loans/{loan_no}").status_code == 401
    unknown = client.get(f"/v1/loans/{loan_no}", headers={"X-Bank-Key": "guess"})
    assert unknown.status_code == 401 and unknown.json()["field"] == "X-Bank-Key"
    other = client.get(f"/v1/loans/{loan_no}", headers=CCB)
    assert other.status_code == 403 and other.json()["field"] == "loan_no"
    own = client.get(f"/v1/loans/{loan_no}", headers=ICBC, params={"as_of": DEDUCTION_ON.isoformat()})
    assert own.status_code == 200 and own.json()["amount_due"] == "2067.79"
    assert client.post("/v1/repayments", json=repayment(loan_no), headers=CCB).status_code == 403
    assert client.get("/v1/loans/DK000", headers=ICBC).status_code == 404
    borrower_account = centre.ledger.member(centre.borrowers[0]).account_no
    assert client.get(f"/v1/accounts/{borrower_account}/balance", headers=ICBC).status_code == 200
    assert client.get(f"/v1/accounts/{borrower_account}/balance", headers=CCB).status_code == 403


def test_a_repayment_is_idempotent_by_its_bank_reference(served: Any) -> None:
    client, centre = served
    loan_no = centre.loans[0]
    first = client.post("/v1/repayments", json=repayment(loan_no, "2067.79"), headers=ICBC)
    assert first.status_code == 201, first.json()
    again = client.post("/v1/repayments", json=repayment(loan_no, "2067.79"), headers=ICBC)
    assert again.status_code == 200 and again.json()["repeat"] is True
    assert {k: v for k, v in again.json().items() if k != "repeat"} == first.json()
    other = client.post("/v1/repayments", json=repayment(loan_no, "2000.00"), headers=ICBC)
    assert other.status_code == 409 and other.json()["rule"] == "BNK-2"
    status = client.get(f"/v1/loans/{loan_no}", headers=ICBC, params={"as_of": DEDUCTION_ON.isoformat()}).json()
    assert status["amount_due"] == "0.00"
    assert centre.ledger.check_books()["ok"]


@pytest.mark.parametrize("amount, field", [(2067.79, "amount"), (100, "amount"), ("1.234", "amount"),
                                           ("-5.00", "amount"), ("1e3", "amount"), (None, "amount")])
def test_money_is_a_string_and_a_float_names_its_field(sqlite_served: Any, amount: Any, field: str) -> None:
    client, centre = sqlite_served
    answer = client.post("/v1/repayments", json=repayment(centre.loans[0], amount), headers=ICBC)
    assert answer.status_code == 422 and answer.json()["field"] == field, answer.json()
    assert set(answer.json()) == {"field", "rule", "message"}


def test_dates_and_zero_are_refused_with_their_rule(sqlite_served: Any) -> None:
    client, centre = sqlite_served
    future = {**repayment(centre.loans[0]), "host_date": "20250301"}
    assert client.post("/v1/repayments", json=future, headers=ICBC).json()["rule"] == "MNY-4"
    impossible = {**repayment(centre.loans[0]), "host_date": "20251399"}
    assert client.post("/v1/repayments", json=impossible, headers=ICBC).json()["field"] == "host_date"
    zero = client.post("/v1/repayments", json=repayment(centre.loans[0], "0.00"), headers=ICBC)
    assert zero.status_code == 422 and zero.json()["rule"] == "MNY-1"
    extra = client.post("/v1/repayments", json={**repayment(centre.loans[0]), "note": "x"}, headers=ICBC)
    assert extra.status_code == 422 and extra.json()["field"] == "note"


def test_debit_results_in_real_time(sqlite_served: Any) -> None:
    client, centre = sqlite_served
    record = centre.ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
    first, second = record["rows"][0], record["rows"][1]
    body = {"serial": first["serial"], "code": "00000", "message": "", "host_date": "20250217",
            "bank_reference": "RT1"}
    assert client.post("/v1/debit-results", json=body, headers=CCB).status_code == 403
    collected = client.post("/v1/debit-results", json=body, headers=ICBC)
    assert collected.status_code == 201 and collected.json()["state"] == "COLLECTED"
    assert client.post("/v1/debit-results", json=body, headers=ICBC).status_code == 200
    failed = client.post("/v1/debit-results", headers=ICBC, json={**body, "serial": second["serial"], "code": "E0001",
                                                                  "message": "余额不足", "bank_reference": "RT2"})
    assert failed.status_code == 201 and failed.json()["state"] == "FAILED"
    wrong = client.post("/v1/debit-results", headers=ICBC, json={**body, "serial": record["rows"][2]["serial"],
                                                                 "bank_reference": "RT3", "amount": "1.00"})
    assert wrong.status_code == 422 and wrong.json()["rule"] == "BNK-4"
    assert centre.ledger.check_books()["ok"]


# -- schemathesis: the OpenAPI schema against the running app, no server error ----------------------------
class PopulatedLedgers:
    """Opens ledgers on one scratch store, building the centre the first time (lazily: the schema is
    loaded at import, before any test runs)."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="gjj-api-")
        atexit.register(shutil.rmtree, self.folder, True)
        self.url = f"sqlite:///{self.folder}/api.sqlite3"
        self.clock = FixedClock(datetime(2024, 6, 1, 10, tzinfo=CHINA_TZ))
        self.built = False

    def __call__(self) -> Any:
        ledger = banking_ledger(self.url, self.clock)
        if not self.built:
            build_loan_centre(ledger, self.clock)
            ledger.export_debits(BANK, DEDUCTION_ON, "GBK")
            self.built = True
        return ledger


schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(PopulatedLedgers(), KEYS))


@schema.parametrize()
@settings(max_examples=SCHEMATHESIS_EXAMPLES_MAX, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_input_makes_a_server_error(case: Any) -> None:
    for headers in (ICBC, CCB, {}):
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, case.body, response.text)


def test_a_burst_with_a_bad_posting_applies_the_others_once_and_answers_the_bad_one_alone(served: Any) -> None:
    """32 posts at once through the posting fast path and the group commit: the refused one is 422 naming
    its field, the others 201; the same burst again is 200 (repeats) and the same 422, nothing twice."""
    from concurrent.futures import ThreadPoolExecutor

    client, centre = served
    loans = centre.loans
    bodies = [repayment(loans[n % len(loans)], "1.00", f"BURST{n:03d}") for n in range(32)]
    bodies[7] = repayment(loans[7 % len(loans)], "99999999.00", "BURST007")  # more than the loan can owe

    def burst() -> list[Any]:
        with ThreadPoolExecutor(max_workers=32) as pool:
            return list(pool.map(lambda body: client.post("/v1/repayments", json=body, headers=ICBC), bodies))

    first = burst()
    assert [a.status_code for a in first] == [201] * 7 + [422] + [201] * 24, [a.text for a in first if a.status_code != 201]
    assert first[7].json()["field"] == "amount"
    due = [client.get(f"/v1/loans/{n}", headers=ICBC).json()["amount_due"] for n in loans]
    again = burst()
    assert [a.status_code for a in again] == [200] * 7 + [422] + [200] * 24
    assert all(a.json()["repeat"] is True for n, a in enumerate(again) if n != 7)
    assert [client.get(f"/v1/loans/{n}", headers=ICBC).json()["amount_due"] for n in loans] == due
    assert centre.ledger.check_books()["ok"] and centre.ledger.audit.verify().ok


def test_a_body_the_fast_path_does_not_take_gets_the_routes_own_answer(sqlite_served: Any) -> None:
    client, centre = sqlite_served
    body = '{"loan_no": "%s", "amount": "1.00", "host_date": "20250217", "bank_reference": "TXT1"}' % centre.loans[0]
    as_text = client.post("/v1/repayments", content=body, headers={**ICBC, "content-type": "text/plain"})
    assert as_text.status_code == 422 and set(as_text.json()) == {"field", "rule", "message"}
    extra = client.post("/v1/repayments", json={**repayment(centre.loans[0]), "note": "x"}, headers=ICBC)
    assert extra.status_code == 422 and extra.json()["field"] == "note"
    assert client.post("/v1/repayments", json=repayment(centre.loans[0]), headers={"X-Bank-Key": "guess"}).status_code == 401
    as_json = client.post("/v1/repayments", content=body, headers={**ICBC, "content-type": "application/json; charset=utf-8"})
    assert as_json.status_code == 201, as_json.text


def test_a_request_that_stops_waiting_is_told_so_and_the_committing_thread_goes_on(monkeypatch: Any) -> None:
    import asyncio
    import threading

    import ledger.api_batcher as batching
    from ledger.command_batch import Command, Outcome

    release = threading.Event()

    def slow(_app: Any, commands: Any, _cache: Any = None) -> list[Outcome]:
        release.wait(5)
        return [Outcome(result={"key": command.key}) for command in commands]

    monkeypatch.setattr(batching, "execute_batch", slow)
    monkeypatch.setattr(batching, "ANSWER_SECONDS_MAX", 0.05)
    batcher = batching.CommandBatcher(lambda: None)
    with pytest.raises(TimeoutError):
        asyncio.run(batcher.submit_async(Command("test", "late", {}, lambda: ({}, []))))
    release.set()  # the late command's answer finds nobody waiting: the thread must not die of it
    monkeypatch.setattr(batching, "ANSWER_SECONDS_MAX", 5.0)
    assert asyncio.run(batcher.submit_async(Command("test", "next", {}, lambda: ({}, [])))) == {"key": "next"}
    assert batcher.submit(Command("test", "sync", {}, lambda: ({}, []))) == {"key": "sync"}


def test_a_large_body_goes_to_the_route_and_gets_its_answer(sqlite_served: Any) -> None:
    client, centre = sqlite_served
    body = {**repayment(centre.loans[0], "1.00", "BIG1"), "padding": "x" * 40_000}
    answer = client.post("/v1/repayments", json=body, headers=ICBC)
    assert answer.status_code == 422 and answer.json()["field"] == "padding"
    assert client.post("/v1/repayments", json=repayment(centre.loans[0], "1.00", "BIG1"), headers=ICBC).status_code == 201
