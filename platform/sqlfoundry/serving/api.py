"""HTTP request/response shapes and the checks that run on every generated statement."""

from __future__ import annotations

import sqlglot
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlglot.dialects import Dialects
from sqlglot.errors import SqlglotError

from sqlfoundry.sql.schema import Table
from sqlfoundry.sql.validate import check_query
from sqlfoundry.storage.registry import AdapterRef, RegistryError

DIALECTS = sorted(d.value for d in Dialects if d.value)
SCHEMA_MARKER = "SCHEMA:\n"  # where the schema starts in the training system prompt


def _check_dialect(value: str) -> str:
    value = value.lower()
    if value not in DIALECTS:
        raise ValueError(f"unknown dialect {value!r}; use one of: {', '.join(DIALECTS)}")
    return value


def _check_adapter(value: str | None) -> str | None:
    if value:
        try:
            AdapterRef.parse(value)
        except RegistryError as err:
            raise ValueError(str(err)) from None
    return value or None


class SqlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # CREATE TABLE text, or `database`: a configured database's introspected schema (SQL in its
    # dialect unless `dialect` says otherwise; nothing is run). Exactly one of the two (checked by the route).
    schema_: str | None = Field(None, alias="schema", min_length=1)
    database: str | None = Field(None, min_length=1, max_length=64)
    question: str = Field(min_length=1)
    dialect: str = "sqlite"
    adapter: str | None = None
    max_new_tokens: int | None = Field(None, ge=1)
    # Candidates to generate, execute and vote on (at most the deployment's strategy.max_candidates);
    # None: the deployment's strategy.candidates.
    candidates: int | None = Field(None, ge=1)

    @field_validator("dialect")
    @classmethod
    def _dialect(cls, value: str) -> str:
        return _check_dialect(value)

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, value: str | None) -> str | None:
        return _check_adapter(value)


class QueryBody(BaseModel):
    """POST /v1/query: answer `question` on the configured database `database` and run the SQL."""

    model_config = ConfigDict(extra="forbid")

    database: str = Field(min_length=1, max_length=64)
    question: str = Field(min_length=1)
    adapter: str | None = None
    max_rows: int | None = Field(None, ge=1)  # at most the database's max_rows
    max_new_tokens: int | None = Field(None, ge=1)
    # Candidates to generate and run on the database, voting on their rows (at most the deployment's
    # strategy.max_candidates); None: the deployment's strategy.candidates.
    candidates: int | None = Field(None, ge=1)

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, value: str | None) -> str | None:
        return _check_adapter(value)


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatBody(BaseModel):
    """The subset of OpenAI's chat completions request that makes sense for greedy SQL."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None  # accepted for compatibility; decoding is always greedy
    stream: bool = False
    dialect: str = "sqlite"  # sqlfoundry extension

    @field_validator("dialect")
    @classmethod
    def _dialect(cls, value: str) -> str:
        return _check_dialect(value)


class ApiError(Exception):
    """An error answered as JSON in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.headers = status, message, param, kind, headers


def adapter_for_model(model: str, model_id: str) -> str | None:
    """The adapter ref in a chat request's `model` (`<model_id>` or `<model_id>:<adapter ref>`),
    checked here so a bad one is answered before it reaches a batch."""
    base, sep, adapter = model.partition(":")
    if base != model_id or (sep and not adapter):
        raise ApiError(404, f"unknown model {model!r}; GET /v1/models lists what this endpoint serves",
                       "model", kind="not_found_error")
    if adapter:
        try:
            AdapterRef.parse(adapter)
        except RegistryError as err:
            raise ApiError(422, f"model: the adapter part of {model!r} is not a valid ref: {err}", "model") from None
    return adapter or None


def chat_to_sql_request(body: ChatBody) -> tuple[str, str]:
    """(schema, question) from chat messages: the schema is the system message, as in training
    (either bare CREATE TABLE statements or the whole training system prompt), the question the
    last user message."""
    if body.stream:
        raise ApiError(400, "streaming is not supported; send stream: false", "stream")
    systems = [m.content for m in body.messages if m.role == "system"]
    users = [m.content for m in body.messages if m.role == "user"]
    if not systems or not systems[-1].strip():
        raise ApiError(422, "a system message holding the CREATE TABLE schema is required", "messages")
    if not users or not users[-1].strip():
        raise ApiError(422, "a user message holding the question is required", "messages")
    schema = systems[-1]
    if SCHEMA_MARKER in schema:
        schema = schema.split(SCHEMA_MARKER, 1)[1]
    return schema, users[-1]


def finish_sql(sql: str, tables: list[Table], dialect: str) -> tuple[str, bool, str | None]:
    """(sql in the target dialect, valid, error reason) for a generated SQLite statement.

    `valid` means: it parses, is one read-only statement and names only tables and columns of the
    request's schema. An invalid statement is returned as generated (SQLite) with the reason, so
    callers see what the model wrote but are told not to run it.
    """
    checked = check_query(sql, tables)
    if not checked.ok:
        return sql, False, f"{checked.reason}: {checked.detail}"
    if dialect == "sqlite":
        return sql, True, None
    try:
        return sqlglot.transpile(sql, read="sqlite", write=dialect)[0], True, None
    except SqlglotError as err:
        return sql, False, f"transpile_error: {str(err).splitlines()[0][:200]}"
