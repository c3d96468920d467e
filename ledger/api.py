"""The HTTP API for banks that post in real time (BNK-1): an entry point that only translates and calls.

``create_app(ledger_factory)`` builds a FastAPI application over one ledger (opened at start-up,
closed at shut-down). Each bank authenticates with its own key in the ``X-Bank-Key`` header; keys come
from ``GJJ_BANK_KEYS`` (``ICBC:key1,CCB:key2``) or the file named by ``GJJ_BANK_KEYS_FILE`` (one
``CODE:key`` a line, ``#`` comments). A bank acts only on its own loans and debits (``loan.bank``):
another bank's loan is 403, a missing or unknown key 401 — checked before the body is read, so a
caller without a key learns nothing about the body.

Money is a JSON string read by the one amount parser (``ledger.money.parse_amount``, MNY-1); the models
are strict, so a JSON number (a float) is 422 naming the field. Text fields pass the text checker
(``ledger.text``, TXT-1: no NUL, control or bidi characters, at most the read side's column size),
dates the date reader (``ledger.dates``). Every error — 400 for a body that is not JSON, 401, 403,
404, 405, 409, 422 — is ``{"field", "rule", "message"}``; bad input never yields a 5xx. Posts are idempotent by the bank reference (bank, 主机日期, 主机流水号, BNK-2): the
first post answers 201, a repeat with the same content 200 with the first result, other content 409.
The wall clock is read here (MNY-2), through the ledger's clock.
"""

from __future__ import annotations

import gc
import hmac
import logging
import os
import threading
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any, Callable, Optional

import orjson
from fastapi import Depends, FastAPI, Path as PathParam, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.aggregates.base import LedgerRuleError
from ledger.api_batcher import CommandBatcher
from ledger.aggregates.errors import IdempotencyConflictError
from ledger.application import ConcurrencyConflictError, NotFoundError, as_str
from ledger.dates import parse_date, parse_host_date
from ledger.money import AMOUNT_CHARS_MAX, MoneyError
from ledger.policy import PolicyError
from ledger.services.banking import BankNotAuthorisedError
from ledger.text import CODE_CHARS_MAX, NAME_CHARS_MAX, check_code, check_name

KEY_HEADER = "X-Bank-Key"
KEYS_ENV = "GJJ_BANK_KEYS"
KEYS_FILE_ENV = "GJJ_BANK_KEYS_FILE"
BANK_KEYS_MAX = 1_000
AMOUNT_PATTERN = r"^[0-9]{1,13}(\.[0-9]{1,2})?$"  # documented in the schema; parse_amount decides
HOST_DATE_PATTERN = r"^[0-9]{8}$"
TEXT_CHARS_MAX = CODE_CHARS_MAX
MESSAGE_CHARS_MAX = NAME_CHARS_MAX
PROTECTED_PATH_PREFIX = "/v1/"
API_VERSION = "1.0.0"

FAST_BODY_BYTES_MAX = 16_384  # a posting is ~150 bytes; more goes to the route
GC_YOUNG_THRESHOLD = 50_000
GC_MIDDLE_THRESHOLD = 20
GC_OLD_THRESHOLD = 100

logger = logging.getLogger(__name__)


class BankKeyError(ValueError):
    """The bank key configuration cannot be read."""


def parse_bank_keys(text: str) -> dict[str, str]:
    """``ICBC:key1,CCB:key2`` (or one pair a line) → {key: bank}."""
    keys: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        item = item.split("#", 1)[0].strip()
        if not item:
            continue
        bank, sep, key = item.partition(":")
        if not sep or not bank.strip() or not key.strip():
            raise BankKeyError(f"a bank key is CODE:key, got {item!r}")
        keys[key.strip()] = bank.strip()
    if len(keys) > BANK_KEYS_MAX:
        raise BankKeyError(f"at most {BANK_KEYS_MAX} bank keys")
    return keys


def load_bank_keys(env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ) if env is None else env
    if env.get(KEYS_FILE_ENV):
        return parse_bank_keys(Path(env[KEYS_FILE_ENV]).read_text("utf-8"))
    return parse_bank_keys(env.get(KEYS_ENV, ""))


# -- request and response models ----------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class RepaymentIn(Strict):
    """A repayment the bank collected from the borrower (还款), posted as of its host date."""

    loan_no: str = Field(min_length=1, max_length=TEXT_CHARS_MAX, description="The fund loan number")
    amount: str = Field(max_length=AMOUNT_CHARS_MAX, description="Yuan as a string, 0-2 decimals",
                        examples=["2067.79"], json_schema_extra={"pattern": AMOUNT_PATTERN})
    host_date: str = Field(pattern=HOST_DATE_PATTERN, description="主机日期 YYYYMMDD", examples=["20250217"])
    bank_reference: str = Field(min_length=1, max_length=TEXT_CHARS_MAX, description="主机流水号")


class DebitResultIn(Strict):
    """The result of one card debit instruction (by its serial, 业务流水号)."""

    serial: str = Field(pattern=r"^[0-9]{15}$", description="The centre's serial of the debit")
    code: str = Field(min_length=1, max_length=TEXT_CHARS_MAX, description="响应码; 00000 is success")
    message: str = Field(default="", max_length=MESSAGE_CHARS_MAX, description="响应信息")
    host_date: str = Field(pattern=HOST_DATE_PATTERN, description="主机日期 YYYYMMDD")
    bank_reference: str = Field(min_length=1, max_length=TEXT_CHARS_MAX, description="主机流水号")
    amount: Optional[str] = Field(default=None, max_length=AMOUNT_CHARS_MAX, description="Collected amount (must agree)",
                                  json_schema_extra={"pattern": AMOUNT_PATTERN})


class ErrorOut(BaseModel):
    field: str
    rule: str
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in ((400, "The body is not JSON"), (401, "No or unknown bank key"),
                         (403, "Another bank's loan or debit"),
                         (404, "No such loan, debit or account"), (409, "Bank reference used with other content"),
                         (422, "Invalid input or refused by a rule"))
}


def error_response(status: int, field: str, rule: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"field": field, "rule": rule, "message": message})


def _host_date(text: str) -> date:
    return parse_host_date(text, "host_date")


def _day(text: Optional[str], ledger: Any) -> date:
    return ledger.today() if text is None else parse_date(text, "as_of")


class BankKeyGate:
    """ASGI middleware: a request under ``/v1/`` without a key some bank holds is answered 401 before
    routing reads its body (an undecodable body from a caller without a key is 401, not 400). The
    bank is left in the request state for ``bank_of``."""

    def __init__(self, app: Any, bank_for: Callable[[Optional[str]], Optional[str]]):
        self.app = app
        self.bank_for = bank_for

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(PROTECTED_PATH_PREFIX):
            bank = self.bank_for(key_of(scope))
            if bank is None:
                await unauthorised_response()(scope, receive, send)
                return
            scope.setdefault("state", {})["bank"] = bank
        await self.app(scope, receive, send)


def key_of(scope: dict[str, Any]) -> Optional[str]:
    wanted = KEY_HEADER.lower().encode("latin-1")
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == wanted), None)


class BankAPI(FastAPI):
    """The FastAPI application, with its hot path (``fast_paths``: method and path → handler) taken before
    the framework's middleware stack: the key is checked first (401 before anything else, as by
    ``BankKeyGate``), then the handler runs; anything it does not take it hands to the full stack."""

    fast_paths: dict[tuple[str, str], Any]
    bank_for: Callable[[Optional[str]], Optional[str]]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        fast = self.fast_paths.get((scope.get("method"), scope.get("path"))) if scope["type"] == "http" else None
        if fast is None:
            await super().__call__(scope, receive, send)
            return
        bank = self.bank_for(key_of(scope))
        if bank is None:
            await unauthorised_response()(scope, receive, send)
            return
        await fast(bank, scope, receive, send, super().__call__)


class RepaymentFastPath:
    """``POST /v1/repayments`` without the framework's per-request machinery (issue 14: 500 postings/s):
    no middleware stack, routing, dependency solving or request thread.

    The body is read, validated by the same model (``RepaymentIn``, strict, in pydantic's JSON mode) and
    checked by the same checkers as the route; the command is awaited on the event loop (no request
    thread) and the answer is written as JSON bytes. Anything off the happy path of the input — another
    content type, a body the model refuses — is handed to the FastAPI route unchanged (its body replayed),
    so every 400/422 is the route's own answer; a refusal by the ledger is answered from the same table as
    the route's exception handlers (``response_for``)."""

    def __init__(self, ledger_of: Callable[[], Any], batcher: CommandBatcher):
        self.ledger_of = ledger_of
        self.batcher = batcher

    async def __call__(self, bank: str, scope: dict[str, Any], receive: Any, send: Any, route: Any) -> None:
        messages, body, whole = [], b"", False
        while len(body) <= FAST_BODY_BYTES_MAX:  # a larger body is the route's (and its limits')
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: the route's own handling sees it
            body += message.get("body", b"")
            if not message.get("more_body", False):
                whole = True
                break
        parsed = _json_body(scope, body) if whole and len(body) <= FAST_BODY_BYTES_MAX else None
        if parsed is None:
            await route(scope, _replay(messages, receive), send)
            return
        try:
            check_code(parsed.loan_no, "loan_no")
            check_code(parsed.bank_reference, "bank_reference")
            command = self.ledger_of().repayment_command(bank, parsed.loan_no, parsed.amount,
                                                         _host_date(parsed.host_date), parsed.bank_reference)
            result = await self.batcher.submit_async(command)
        except TimeoutError:  # it may still commit: the same posting again is answered once (BNK-2)
            await error_response(503, "", "BUSY", "no answer in time; post again with the same bank_reference")(
                scope, receive, send)
            return
        except Exception as error:  # the route's exception handlers would answer the same
            if not isinstance(error, tuple(ERRORS)):
                logger.exception("POST /v1/repayments failed")
            await response_for(error)(scope, receive, send)
            return
        payload = orjson.dumps(as_str(result))
        await send({"type": "http.response.start", "status": 200 if result.get("repeat") else 201,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode("latin-1"))]})
        await send({"type": "http.response.body", "body": payload})


def _json_body(scope: dict[str, Any], body: bytes) -> Optional[RepaymentIn]:
    """The posting, when the body is JSON the model takes as it is; else None (the route answers)."""
    content_type = next((v for k, v in scope.get("headers", []) if k.lower() == b"content-type"), b"")
    if content_type.split(b";", 1)[0].strip().lower() != b"application/json" or not body:
        return None
    try:
        return RepaymentIn.model_validate_json(body)
    except ValueError:  # pydantic's ValidationError: the route names the field and the rule
        return None


def _replay(messages: list[dict[str, Any]], receive: Any) -> Any:
    """``receive`` for the route: the messages already read, then the connection's own."""
    pending = list(messages)

    async def replay() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return await receive()
    return replay


def unauthorised_response() -> JSONResponse:
    return JSONResponse(status_code=401, headers={"WWW-Authenticate": KEY_HEADER},
                        content={"field": KEY_HEADER, "rule": "BNK-1", "message": "no or unknown bank key"})


# -- errors --------------------------------------------------------------------------------------
def _error_table() -> dict[type, Callable[[Any], JSONResponse]]:
    """The ledger's refusals as responses: one table for the exception handlers and the posting fast path."""
    return {
        BankNotAuthorisedError: lambda error: error_response(403, error.field or "", error.rule, str(error)),
        NotFoundError: lambda error: error_response(404, error.field, error.rule, str(error)),
        IdempotencyConflictError: lambda error: error_response(409, error.field or "bank_reference", "BNK-2",
                                                               str(error)),
        LedgerRuleError: lambda error: error_response(422, error.field or "", error.rule, str(error)),
        MoneyError: lambda error: error_response(422, error.field or "amount", error.rule_id, str(error)),
        PolicyError: lambda error: error_response(422, "", "POLICY", str(error)),
        ConcurrencyConflictError: lambda error: error_response(409, "", "CONCURRENCY",
                                                               f"{error}; post again with the same reference"),
    }


ERRORS = _error_table()


def internal_error_response() -> JSONResponse:
    return error_response(500, "", "INTERNAL", "internal error; nothing was saved by this request")


def response_for(error: BaseException) -> JSONResponse:
    """What the exception handlers answer for ``error`` (looked up along its classes, as Starlette does)."""
    for cls in type(error).__mro__:
        if cls in ERRORS:
            return ERRORS[cls](error)
    return internal_error_response()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": ("body",), "msg": "invalid"}
        if first.get("type") == "json_invalid":
            return error_response(400, "body", "SCHEMA", "body: not valid JSON")
        names = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
        field = ".".join(names) or "body"
        rule = "MNY-1" if field in ("amount",) else "SCHEMA"
        return error_response(422, field, rule, f"{field}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # the body could not be decoded at all
            return error_response(400, "body", "SCHEMA", f"body: {error.detail}")
        return error_response(error.status_code, "", "HTTP", f"request: {error.detail}")

    @app.exception_handler(Exception)
    async def internal(_request: Request, _error: Exception) -> JSONResponse:
        return internal_error_response()

    for cls, answer in ERRORS.items():
        app.add_exception_handler(cls, _handler(answer))


def _handler(answer: Callable[[Any], JSONResponse]) -> Callable[..., Any]:
    async def handle(_request: Request, error: Exception) -> JSONResponse:
        return answer(error)
    return handle


# -- the garbage collector ---------------------------------------------------------------------------
def serving_gc() -> tuple[int, int, int]:
    """While the API serves: what was allocated at start-up (modules, the ledger, its policy) is frozen out
    of the collector's sight, and a young collection runs every ``GC_YOUNG_THRESHOLD`` allocations rather
    than 700. Measured (session 5): with the defaults a full collection every few seconds over the
    committing thread's aggregates took 80-250 ms with the GIL held, which was the p99; these keep the
    collector to a few short young passes a minute. Undone at shut-down (``restore_gc``)."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, GC_OLD_THRESHOLD)
    return previous


def restore_gc(previous: tuple[int, int, int]) -> None:
    gc.set_threshold(*previous)
    gc.unfreeze()


# -- the application -------------------------------------------------------------------------------
def create_app(ledger_factory: Callable[[], Any], bank_keys: dict[str, str] | None = None) -> "BankAPI":
    """The API over the ledger ``ledger_factory()`` opens; ``bank_keys`` {key: bank} or from the env."""
    keys = load_bank_keys() if bank_keys is None else dict(bank_keys)
    state: dict[str, Any] = {}
    opening = threading.Lock()

    def ledger() -> Any:
        """Opened on first use (also when the server runs no lifespan), closed at shut-down."""
        if "ledger" not in state:
            with opening:
                if "ledger" not in state:
                    state["ledger"] = ledger_factory()
        return state["ledger"]

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        ledger()
        thresholds = serving_gc()
        try:
            yield
        finally:
            restore_gc(thresholds)
            if "ledger" in state:
                state.pop("ledger").close()

    app = BankAPI(title="gjj ledger bank API", version=API_VERSION, lifespan=lifespan,
                  description="Real-time posting for entrusted banks (住房公积金 受委托银行). Money is a string.")
    install_error_handlers(app)
    key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="The bank's own key")

    def bank_for(key: Optional[str]) -> Optional[str]:
        for known, bank in keys.items():
            if key is not None and hmac.compare_digest(known.encode(), key.encode()):
                return bank
        return None

    def bank_of(request: Request, key: Optional[str] = Depends(key_header)) -> str:
        bank = request.state.bank if hasattr(request.state, "bank") else bank_for(key)
        if bank is None:
            raise Unauthorised()
        return bank

    batcher = CommandBatcher(ledger)
    app.add_middleware(BankKeyGate, bank_for=bank_for)
    app.bank_for = bank_for
    app.fast_paths = {("POST", "/v1/repayments"): RepaymentFastPath(ledger, batcher)}
    _routes(app, bank_of, ledger, batcher)

    @app.exception_handler(Unauthorised)
    async def unauthorised(_request: Request, _error: Unauthorised) -> JSONResponse:
        return unauthorised_response()
    return app


class Unauthorised(Exception):
    """No key, or a key no bank holds."""


def _routes(app: FastAPI, bank_of: Callable[..., str], ledger_of: Callable[[], Any],
            batcher: CommandBatcher) -> None:
    @app.post("/v1/repayments", status_code=201, responses={
        200: {"description": "A repeat"}, **ERROR_RESPONSES,
        503: {"model": ErrorOut, "description": "No answer in time: post again with the same bank_reference"}})
    def post_repayment(body: RepaymentIn, response: Response, bank: str = Depends(bank_of)) -> dict[str, Any]:
        """A repayment the bank collected, paid as of 主机日期 (LN-5 allocation; a closed loan → suspense)."""
        check_code(body.loan_no, "loan_no")
        check_code(body.bank_reference, "bank_reference")
        command = ledger_of().repayment_command(bank, body.loan_no, body.amount, _host_date(body.host_date),
                                                body.bank_reference)
        return _answer(batcher.submit(command), response)  # committed with the postings that came with it

    @app.post("/v1/debit-results", status_code=201, responses={200: {"description": "A repeat"}, **ERROR_RESPONSES})
    def post_debit_result(body: DebitResultIn, response: Response, bank: str = Depends(bank_of)) -> dict[str, Any]:
        """The result of a card debit: 00000 collected (paid as of 主机日期), else failed by code (OFF-3)."""
        check_code(body.code, "code")
        check_name(body.message, "message", required=False)
        check_code(body.bank_reference, "bank_reference")
        result = ledger_of().bank_debit_result(bank, body.serial, body.code, body.message, _host_date(body.host_date),
                                               body.bank_reference, body.amount)
        return _answer(result, response)

    @app.get("/v1/loans/{loan_no}", responses=ERROR_RESPONSES)
    def get_loan(loan_no: str = PathParam(max_length=TEXT_CHARS_MAX), bank: str = Depends(bank_of),
                 as_of: Optional[str] = Query(None, max_length=10, description="YYYY-MM-DD")) -> dict[str, Any]:
        """Loan status as of a date (amount due, outstanding principal, overdue)."""
        check_code(loan_no, "loan_no")
        ledger = ledger_of()
        ledger.check_bank_owns_loan(bank, loan_no)
        return as_str(ledger.loan_status(loan_no, _day(as_of, ledger)))

    @app.get("/v1/accounts/{account_no}/balance", responses=ERROR_RESPONSES)
    def get_balance(account_no: str = PathParam(max_length=TEXT_CHARS_MAX), bank: str = Depends(bank_of),
                    as_of: Optional[str] = Query(None, max_length=10, description="YYYY-MM-DD")) -> dict[str, Any]:
        """A fund account's balance, for a bank that services a loan of that member."""
        check_code(account_no, "account_no")
        ledger = ledger_of()
        ledger.bank_may_read_account(bank, account_no)
        return as_str(ledger.balance(account_no, _day(as_of, ledger) if as_of else None))


def _answer(result: dict[str, Any], response: Response) -> dict[str, Any]:
    if result.get("repeat"):
        response.status_code = 200
    return as_str(result)


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory`` with several workers: the store from ``GJJ_DATABASE_URL``, the policy
    from ``GJJ_POLICY`` (default the sample city), the keys from the environment."""
    from ledger.app import Ledger
    from ledger.policy import load_policy
    from ledger.services.banking import with_banking

    policy_path = os.environ.get("GJJ_POLICY")
    policy = load_policy(Path(policy_path) if policy_path else None)
    return create_app(lambda: with_banking(Ledger)(None, policy=policy))
