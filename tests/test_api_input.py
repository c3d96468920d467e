"""Careless and hostile input at the bank HTTP API (issue 16), on both stores.

A NUL byte in ``bank_reference`` is a 4xx (it used to post, then broke every projection catch-up on
PostgreSQL); 9,999,999,999,999.99 on a 200,000.00 loan is refused by the repayment ceiling; an as-of
date the calendar cannot hold is a 4xx, not a 500; a caller without a key is 401 before its body is
read; every error has the documented shape. A refusal leaves the store byte-identical.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from ledger.api import create_app
from ledger.application import FixedClock
from ledger.money import Money
from ledger_state import assert_read_side_sound, store_fingerprint
from test_banking import BANK, DEDUCTION_ON, banking_ledger, build_loan_centre

KEYS = {"icbc-secret-key": BANK}
ICBC = {"X-Bank-Key": "icbc-secret-key"}
ERROR_SHAPE = {"field", "rule", "message"}
REPAYMENT_EXCESS_MAX = Money("100000.00")  # the sample policy's limits.repayment_excess_max


@pytest.fixture
def served(store_url: str, clock: FixedClock) -> Iterator[tuple[TestClient, str, str, FixedClock]]:
    ledger = banking_ledger(store_url, clock)
    loan_no = build_loan_centre(ledger, clock, ((BANK, "200000.00"),)).loans[0]
    ledger.close()
    with TestClient(create_app(lambda: banking_ledger(store_url, clock), KEYS)) as client:
        yield client, store_url, loan_no, clock


def repayment(loan_no: str, amount: str = "100.00", reference: str = "API1", host_date: str = "") -> dict[str, str]:
    return {"loan_no": loan_no, "amount": amount, "host_date": host_date or f"{DEDUCTION_ON:%Y%m%d}",
            "bank_reference": reference}


def refused(client: TestClient, url: str, status: int, field: str, rule: str, method: str, path: str,
            **request: Any) -> dict[str, Any]:
    before = store_fingerprint(url)
    answer = client.request(method, path, **request)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == ERROR_SHAPE and (body["field"], body["rule"]) == (field, rule), body
    assert store_fingerprint(url) == before
    return body


def test_a_nul_in_the_bank_reference_is_refused_and_the_read_side_stays_sound(served: Any) -> None:
    client, url, loan_no, _clock = served
    for reference in ("API\x00", "API\u202e1", "  ", "A\u2028B"):
        refused(client, url, 422, "bank_reference", "TXT-1", "POST", "/v1/repayments",
                json=repayment(loan_no, reference=reference), headers=ICBC)
    refused(client, url, 422, "message", "TXT-1", "POST", "/v1/debit-results", headers=ICBC,
            json={"serial": "202502170000001", "code": "E0001", "message": "余额\x00不足", "host_date": "20250217",
                  "bank_reference": "D1"})
    assert client.post("/v1/repayments", json=repayment(loan_no), headers=ICBC).status_code == 201
    assert_read_side_sound(url)


def test_a_repayment_no_loan_can_owe_is_refused(served: Any) -> None:
    client, url, loan_no, _clock = served
    for amount in ("9999999999999.99", "1e30", "99999999999999999999.99", "1,5", "1_000"):
        refused(client, url, 422, "amount", "MNY-1", "POST", "/v1/repayments", json=repayment(loan_no, amount),
                headers=ICBC)
    status = client.get(f"/v1/loans/{loan_no}", headers=ICBC).json()
    ceiling = Money(status["outstanding_principal"]) + Money(status["amount_due"]) + REPAYMENT_EXCESS_MAX
    refused(client, url, 422, "amount", "MNY-1", "POST", "/v1/repayments",
            json=repayment(loan_no, str(ceiling + Money("0.01"))), headers=ICBC)
    paid = client.post("/v1/repayments", json=repayment(loan_no, str(ceiling), "API-MAX"), headers=ICBC)
    assert paid.status_code == 201, paid.text  # the whole payoff and the plausible excess (to suspense)
    assert_read_side_sound(url)


def test_dates_the_calendar_cannot_hold_are_a_4xx_not_a_500(served: Any) -> None:
    client, url, loan_no, _clock = served
    for as_of in ("9999-12-31", "0001-01-01", "2025-02-30", "2025-2-1"):
        refused(client, url, 422, "as_of", "MNY-4", "GET", f"/v1/loans/{loan_no}", params={"as_of": as_of},
                headers=ICBC)
    refused(client, url, 422, "host_date", "BNK-2", "POST", "/v1/repayments",
            json=repayment(loan_no, host_date="20251340"), headers=ICBC)
    refused(client, url, 422, "host_date", "MNY-4", "POST", "/v1/repayments",
            json=repayment(loan_no, host_date="20260217"), headers=ICBC)


def test_no_key_is_401_before_the_body_is_read_and_every_error_has_the_shape(served: Any) -> None:
    client, url, loan_no, _clock = served
    for body in (b"\xff\xfe{", b"{not json", b""):
        for headers in ({}, {"X-Bank-Key": "guess"}):
            refused(client, url, 401, "X-Bank-Key", "BNK-1", "POST", "/v1/repayments", content=body,
                    headers={**headers, "content-type": "application/json"})
    refused(client, url, 400, "body", "SCHEMA", "POST", "/v1/repayments", content=b"\xff\xfe{",
            headers={**ICBC, "content-type": "application/json"})
    refused(client, url, 400, "body", "SCHEMA", "POST", "/v1/repayments", content=b"{not json",
            headers={**ICBC, "content-type": "application/json"})
    refused(client, url, 404, "", "HTTP", "GET", "/v1/nothing", headers=ICBC)
    refused(client, url, 405, "", "HTTP", "PUT", "/v1/repayments", headers=ICBC)


def test_a_reference_reused_with_another_source_is_409(served: Any) -> None:
    client, url, loan_no, clock = served
    ledger = banking_ledger(url, clock)
    try:  # the same bank reference paid at the counter first (content: source counter)
        ledger.pay_loan(loan_no, "100.00", DEDUCTION_ON, "counter", f"{BANK}/{DEDUCTION_ON:%Y%m%d}/API7")
    finally:
        ledger.close()
    refused(client, url, 409, "idempotency_key", "BNK-2", "POST", "/v1/repayments",
            json=repayment(loan_no, "100.00", "API7"), headers=ICBC)
