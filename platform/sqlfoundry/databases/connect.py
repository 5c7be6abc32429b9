"""Engines and access: one pooled, read-only SQLAlchemy engine per database per process, created on
first use (a database that is down does not stop the process starting), and the schema cache."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from sqlfoundry.databases.config import DatabaseConfig
from sqlfoundry.sql.execute import open_read_only
from sqlfoundry.sql.schema import Table

log = logging.getLogger(__name__)

# DuckDB's read_only only stops writes to the file: without these, COPY ... TO writes host files,
# read_csv/read_text read them and INSTALL/LOAD fetch code. lock_configuration stops a query from
# SETting them back.
# PostgreSQL connections per database per process (serving: per ingress replica).
POOL_SIZE, POOL_OVERFLOW = 4, 4
DUCKDB_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
                 "autoload_known_extensions": False, "memory_limit": "1GB", "threads": 2,
                 "lock_configuration": True}

# Driver text -> the reason a caller is told. The driver's own line names host, port, role or file
# path, so it goes to the process log only. First match wins.
_CONNECT_REASONS = [
    (r"password authentication failed|no password supplied|authentication|role \S+ does not exist",
     "authentication failed"),
    (r"connection refused|timeout expired|timed out|could not translate host|no route to host|"
     r"network is unreachable|server closed the connection", "unreachable"),
    (r"too many clients|remaining connection slots", "too many connections"),
    (r"could not set lock|conflicting lock|database is locked", "file is locked"),
    (r"does not exist|unable to open database file|no such file", "no such database or file"),
    (r"permission denied", "permission denied"),
]


def connect_reason(text: str) -> str:
    lowered = text.lower()
    return next((reason for pattern, reason in _CONNECT_REASONS if re.search(pattern, lowered)),
                "see the server log")


class DatabaseError(Exception):
    """A failure talking to a database, with a message safe to show a caller (no URL, no password).
    kind: unknown_database | config | connect_failed | busy | query_failed | timeout"""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass(frozen=True)
class SchemaSnapshot:
    tables: list[Table]
    samples: dict[str, dict[str, list]]  # table -> column -> distinct values
    text: str  # what the model is prompted with
    read_at: float  # time.monotonic()
    schema_name: str | None = None  # the schema the tables were read from (public, main)


def key_digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Database:
    def __init__(self, name: str, config: DatabaseConfig, environ: Mapping[str, str]):
        self.name, self.config = name, config
        self._environ = environ
        self._engine: Engine | None = None
        self._snapshot: SchemaSnapshot | None = None
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.config.dialect

    def allows(self, api_key: str | None) -> bool:
        if self.config.api_keys is None:
            return True
        digest = key_digest(api_key) if api_key else ""
        return any(hmac.compare_digest(digest, allowed) for allowed in self.config.api_keys)

    def password(self) -> str | None:
        if not self.config.password_env:
            return None
        value = self._environ.get(self.config.password_env)
        if not value:
            raise DatabaseError("config", f"database {self.name!r}: the environment variable "
                                          f"{self.config.password_env} (password_env) is not set")
        return value

    def scrub(self, text: str) -> str:
        """`text` with the password blanked, for any message that came from a driver."""
        password = self._environ.get(self.config.password_env or "", "")
        return text.replace(password, "***") if password else text

    def redact(self, text: str) -> str:
        """`text` scrubbed, and without the host, port, role and file path, for a caller."""
        text = self.scrub(text)
        url = make_url(self.config.url)
        names = [(url.host, "<host>"), (url.username, "<role>"), (str(url.port) if url.port else None, "<port>")]
        if self.config.backend != "postgresql":  # the path as configured and as the driver resolves it
            names = [(str(Path(url.database).resolve()), "<file>"), (url.database, "<file>")]
        for secret, shown in names:
            if secret:
                text = re.sub(rf"(?<![\w/.-]){re.escape(secret)}(?![\w-])", shown, text)
        return text

    def failure(self, kind: str, what: str, err: Exception) -> "DatabaseError":
        """A DatabaseError telling a caller only a classified reason; the driver's line is logged."""
        line = self.scrub(driver_message(err))
        log.warning("database %r: %s: %s", self.name, what, line)
        return DatabaseError(kind, f"database {self.name!r}: {what} ({connect_reason(line)})")

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Engine:
        url = make_url(self.config.url)
        if self.config.backend == "postgresql":
            url = url.set(drivername="postgresql+psycopg", password=self.password())
            # Read-only by default for every transaction of this engine's sessions, and a server-side
            # time limit, before any statement of ours runs (execute also sets both per transaction).
            options = (f"-c default_transaction_read_only=on "
                       f"-c statement_timeout={int(self.config.timeout_s * 1000)}")
            # pool_timeout: a request waits for a connection at most as long as its query may run.
            return sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=True,
                                    pool_timeout=self.config.timeout_s,
                                    connect_args={"options": options, "connect_timeout": 10,
                                                  "application_name": "sqlfoundry"})
        if self.config.backend == "duckdb":
            # read_only: DuckDB refuses every write to the file, and other processes may read it too.
            return sa.create_engine(URL.create("duckdb", database=url.database),
                                    connect_args={"read_only": True, "config": dict(DUCKDB_CONFIG)})
        # sqlite: mode=ro on a URI built by Path.as_uri (sql.execute); execute adds the authorizer.
        # (The file URL, not "sqlite://": SQLAlchemy gives memory URLs a one-connection-per-thread pool.)
        return sa.create_engine(URL.create("sqlite", database=url.database),
                                creator=lambda: open_unlocked(url.database))

    def connect(self):
        """A pooled connection; failures become DatabaseError naming the database, never the secret."""
        try:
            return self.engine.connect()
        except DatabaseError:
            raise
        except sa.exc.TimeoutError:  # every pooled connection in use for timeout_s: busy, not down
            raise DatabaseError("busy", f"database {self.name!r}: all its connections are in use; retry shortly") \
                from None
        except Exception as err:
            raise self.failure("connect_failed", "cannot connect", err) from None

    def schema(self, force: bool = False) -> SchemaSnapshot:
        """The introspected schema, read again when older than schema_refresh_s."""
        from sqlfoundry.databases.introspect import read_schema

        snapshot = self._snapshot
        if force or snapshot is None or time.monotonic() - snapshot.read_at >= self.config.schema_refresh_s:
            snapshot = self._snapshot = read_schema(self)
        return snapshot

    @property
    def schema_name(self) -> str | None:
        """The introspected schema (None before the first read): the one qualifier SQL may use."""
        return self._snapshot.schema_name if self._snapshot is not None else None

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def open_unlocked(path: str):
    """A sqlite file opened mode=ro, without the query authorizer: SQLAlchemy's inspector reads the
    schema through PRAGMAs the authorizer denies, so execute installs it around each query only."""
    conn = open_read_only(path)
    conn.set_authorizer(None)
    return conn


def driver_message(err: Exception) -> str:
    """The driver's own first line (SQLAlchemy's wrapper adds the statement and parameters)."""
    original = getattr(err, "orig", None) or err
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return (lines[0] if lines else type(original).__name__)[:300]


class Databases:
    """The named databases of one process (an ingress replica, or the CLI)."""

    def __init__(self, configs: Mapping[str, DatabaseConfig], environ: Mapping[str, str]):
        self.by_name = {name: Database(name, config, environ) for name, config in configs.items()}

    def visible(self, api_key: str | None) -> list[Database]:
        return [db for db in self.by_name.values() if db.allows(api_key)]

    def get(self, name: str, api_key: str | None) -> Database:
        """The database `name` if this key may use it; otherwise the same error as for a name that does
        not exist, so a caller cannot learn which names exist."""
        db = self.by_name.get(name)
        if db is None or not db.allows(api_key):
            raise DatabaseError("unknown_database", f"no database named {name!r}; GET /v1/databases lists "
                                                    "the ones this key may use")
        return db
