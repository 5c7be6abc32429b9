"""One database as the operator declares it (serve args `databases: {name: {...}}`, or `sqlfoundry ask`).

Secrets never live here: the URL may not carry a password (it comes from the environment variable
named by `password_env`), and `api_keys` holds SHA-256 digests of API keys, not the keys.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sqlfoundry.config.loader import ConfigError, format_validation_error

# SQLAlchemy backend -> (driver we use, sqlglot dialect)
BACKENDS = {"postgresql": ("psycopg", "postgres"), "sqlite": ("pysqlite", "sqlite"), "duckdb": ("duckdb", "duckdb")}
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class DatabaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # postgresql://user@host:port/db, sqlite:///path.db, duckdb:///path.duckdb (files open read-only)
    url: str
    password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float = Field(5.0, gt=0, le=300)  # per query, enforced by the database where it can
    max_rows: int = Field(1000, ge=1, le=100_000)  # the most rows a response carries (truncated: true)
    schema_refresh_s: float = Field(300.0, ge=0)  # the introspected schema is read again after this long
    sample_values: int = Field(0, ge=0, le=10)  # distinct values shown per text column (0: none)
    # Who may use it: ["sha256:<hex of sha256(key)>", ...]; None: every caller the endpoint admits.
    api_keys: list[str] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL; use postgresql://user@host:port/db, sqlite:///path.db "
                             "or duckdb:///path.duckdb") from None
        backend, _, driver = url.drivername.partition("+")
        if backend not in BACKENDS or (driver and driver != BACKENDS[backend][0]):
            raise ValueError(f"unsupported database {url.drivername!r}; supported: postgresql (psycopg), "
                             "sqlite, duckdb")
        # psycopg also takes a password (or a file of them) from the query string: the same rule.
        if url.password is not None or {key.lower() for key in url.query} & {"password", "passfile"}:
            raise ValueError("the URL must not contain a password: put it in an environment variable and "
                             "name that variable in password_env")
        if backend != "postgresql" and not url.database:
            raise ValueError(f"{backend} URLs name a file: {backend}:///path/to/file")
        return value

    @field_validator("api_keys")
    @classmethod
    def _api_keys(cls, value: list[str] | None) -> list[str] | None:
        for entry in value or []:
            if not _DIGEST.match(entry):
                raise ValueError("api_keys entries are 'sha256:' + the hex SHA-256 of a key "
                                 "(printf %s KEY | sha256sum), never the key itself")
        return value

    @property
    def backend(self) -> str:
        return make_url(self.url).drivername.partition("+")[0]

    @property
    def dialect(self) -> str:
        """The sqlglot dialect generated SQL is transpiled to."""
        return BACKENDS[self.backend][1]


def parse_database_config(values: dict, origin: str = "database") -> DatabaseConfig:
    """The edge for one database's settings: errors name the field and never echo the input (a URL
    given with a password in it must not reach a log through its own error message)."""
    try:
        return DatabaseConfig.model_validate(values)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, origin, "README.md, 'Ask a real database'")) from None
