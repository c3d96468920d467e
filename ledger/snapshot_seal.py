"""Snapshots are evidence too: each carries the chain hash of its event and a seal (issue 14, AUD-1).

A fund account's or a loan's snapshot is its decision state (``ledger.aggregates.*_compact``) as
JSON text ``z``. It is written in the same transaction as the events it was taken after, with
``c``, the aggregate chain hash of the event at its version, and ``m``, an HMAC-SHA256 over
(aggregate id, version, ``c``, ``z``) under the centre's snapshot key — a key kept outside the
database, so whoever can write the database cannot forge a snapshot that a loader believes.

A snapshot whose seal does not verify, or that has none (written before seals), is discarded
when loaded: the aggregate is replayed from its events and the discard is reported (logged and
counted); ``gjj audit verify`` checks every snapshot's seal and chain hash.

The key: ``GJJ_SNAPSHOT_KEY`` (64 hex characters), else the file ``GJJ_SNAPSHOT_KEY_FILE``, else a
key file made on first use next to the SQLite database (``<db>.snapshot-key``) or, for
PostgreSQL, under ``~/.config/gjj/`` named after the database and schema (mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from ledger.rules import HistoryRequired

KEY_BYTES = 32
KEY_ENV = "GJJ_SNAPSHOT_KEY"
KEY_FILE_ENV = "GJJ_SNAPSHOT_KEY_FILE"


class SnapshotKeyError(RuntimeError):
    """The snapshot key cannot be read or made."""


class SnapshotRejected(HistoryRequired):
    """A snapshot that is not believed: the aggregate is replayed from its events instead."""

    def __init__(self, aggregate_id: Any, version: int, why: str):
        self.version = version
        self.reason = why
        super().__init__(aggregate_id, f"snapshot v{version} rejected ({why}); replay")


def key_path(storage: Any) -> Path:
    if os.environ.get(KEY_FILE_ENV):
        return Path(os.environ[KEY_FILE_ENV])
    if storage.engine == "sqlite":
        return Path(f"{storage.sqlite_path}.snapshot-key")
    name = f"snapshot-{storage.host}-{storage.port}-{storage.database}-{storage.schema or 'public'}.key"
    return Path.home() / ".config" / "gjj" / name


def load_key(storage: Any) -> bytes:
    """The centre's snapshot key (made on first use when no key is configured)."""
    text = os.environ.get(KEY_ENV)
    if text:
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise SnapshotKeyError(f"{KEY_ENV} is not hexadecimal") from None
        if len(key) < KEY_BYTES:
            raise SnapshotKeyError(f"{KEY_ENV} holds fewer than {KEY_BYTES} bytes")
        return key
    path = key_path(storage)
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(KEY_BYTES))
        key = bytes.fromhex(path.read_text().strip())
    except FileExistsError:  # another process made it first
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as error:
        raise SnapshotKeyError(f"snapshot key file {path}: {error}") from error
    if len(key) < KEY_BYTES:
        raise SnapshotKeyError(f"snapshot key file {path} holds fewer than {KEY_BYTES} bytes")
    return key


def seal(key: bytes, aggregate_id: Any, version: int, chain_hash: str, text: str) -> str:
    message = f"{aggregate_id}|{version}|{chain_hash}|".encode() + text.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sealed_state(key: bytes, aggregate_id: Any, version: int, chain_hash: str, state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's state with its chain hash and seal."""
    text = state["z"]
    return {"z": text, "c": chain_hash, "m": seal(key, aggregate_id, version, chain_hash, text)}


def check(key: bytes, aggregate_id: Any, version: int, state: Any) -> str:
    """The snapshot's chain hash when its seal verifies; ``SnapshotRejected`` otherwise."""
    if not isinstance(state, dict) or set(state) != {"z", "c", "m"}:
        raise SnapshotRejected(aggregate_id, version, "no seal: written before seals, or not by the ledger")
    if not all(isinstance(state[name], str) for name in ("z", "c", "m")):
        raise SnapshotRejected(aggregate_id, version, "malformed seal")
    expected = seal(key, aggregate_id, version, state["c"], state["z"])
    if not hmac.compare_digest(expected, state["m"]):
        raise SnapshotRejected(aggregate_id, version, "seal does not verify")
    return state["c"]
