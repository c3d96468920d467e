"""One place that maps ``GJJ_DATABASE_URL`` onto the event store and the read-model engine.

``sqlite:///path/to/ledger.sqlite3`` (the default, an embedded file) or
``postgresql://user:password@host:port/database?schema=name`` (production).
The eventsourcing library is configured through its environment keys
(``PERSISTENCE_MODULE``, ``SQLITE_DBNAME``, ``POSTGRES_*``); SQLAlchemy gets the
same database for the read models (ADR 0001).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

DEFAULT_URL = "sqlite:///gjj-data/ledger.sqlite3"
ENV_URL = "GJJ_DATABASE_URL"
SQLITE_LOCK_TIMEOUT_SECONDS = 30


class StorageConfigError(ValueError):
    """GJJ_DATABASE_URL cannot be understood; the message says which part."""


POSTGRES_FACTORY_TOPIC = "ledger.pg_factory:LedgerPostgresFactory"  # eventsourcing's, with jit off


@dataclass(frozen=True)
class StorageConfig:
    url: str
    engine: str  # "sqlite" | "postgresql"
    sqlite_path: str | None = None
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    database: str = ""
    schema: str = ""

    def eventsourcing_env(self) -> dict[str, str]:
        if self.engine == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path or "",
                "SQLITE_LOCK_TIMEOUT": str(SQLITE_LOCK_TIMEOUT_SECONDS),
            }
        env = {
            "PERSISTENCE_MODULE": POSTGRES_FACTORY_TOPIC,
            "POSTGRES_DBNAME": self.database,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",  # ADR 0021: chained saves insert over typed arrays; no function DDL
        }
        if self.schema:
            env["POSTGRES_SCHEMA"] = self.schema
        return env

    def sqlalchemy_url(self) -> str:
        if self.engine == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{self.database}"

    def psycopg_conninfo(self) -> str:
        parts = [f"host={self.host}", f"port={self.port}", f"dbname={self.database}", f"user={self.user}"]
        if self.password:
            parts.append(f"password={self.password}")
        return " ".join(parts)


def parse_database_url(url: str) -> StorageConfig:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        if parsed.netloc:
            raise StorageConfigError(f"{ENV_URL}: write sqlite:///relative/path or sqlite:////absolute/path")
        if not path:
            raise StorageConfigError(f"{ENV_URL}: the sqlite URL names no file")
        return StorageConfig(url=url, engine="sqlite", sqlite_path=path)
    if parsed.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        query = parse_qs(parsed.query)
        database = parsed.path.lstrip("/")
        if not database:
            raise StorageConfigError(f"{ENV_URL}: the postgresql URL names no database")
        return StorageConfig(
            url=url, engine="postgresql", host=parsed.hostname or "127.0.0.1", port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"), password=unquote(parsed.password or ""),
            database=database, schema=(query.get("schema") or [""])[0],
        )
    raise StorageConfigError(f"{ENV_URL}: unsupported scheme {parsed.scheme!r} (sqlite or postgresql)")


def config_from_env(url: str | None = None) -> StorageConfig:
    return parse_database_url(url or os.environ.get(ENV_URL) or DEFAULT_URL)


def prepare(config: StorageConfig) -> None:
    """Create what the event store needs before it opens: the SQLite folder or the PostgreSQL schema."""
    if config.engine == "sqlite":
        Path(config.sqlite_path or ".").parent.mkdir(parents=True, exist_ok=True)
        return
    if config.schema:
        import psycopg

        with psycopg.connect(config.psycopg_conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{config.schema}"')


def drop_postgres_schema(config: StorageConfig) -> None:
    """Tests only: remove a scratch schema and everything in it."""
    import psycopg

    if config.engine != "postgresql" or not config.schema or config.schema == "public":
        raise StorageConfigError("refusing to drop a schema that is not a scratch schema")
    with psycopg.connect(config.psycopg_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{config.schema}" CASCADE')
