"""Read-only execution of generated SQL on a real database, in depth:

1. static: `sql.validate.check_query` on the model's SQLite SQL against the introspected tables, then
   again on the sqlglot transpilation to the database's dialect (that dialect's function allow-list);
2. the engine's own guard: PostgreSQL runs it in a `READ ONLY` transaction (on top of the session's
   `default_transaction_read_only`) with `SET LOCAL statement_timeout`; DuckDB files are opened
   `read_only`; sqlite files `mode=ro` with `sql.execute`'s authorizer for the query's duration;
3. a row cap (`truncated: true` past `max_rows`) and a time limit enforced inside the database
   (PostgreSQL cancels server-side; sqlite's progress handler and DuckDB's interrupt stop the query).

`run_candidate` is the one entry point: serving's /v1/query and the answering pipeline call it.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import logging
import math
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import traverse_scope

from sqlfoundry.databases.connect import Database, driver_message
from sqlfoundry.sql.execute import lock_read_only
from sqlfoundry.sql.schema import Table
from sqlfoundry.sql.validate import check_query, sqlite_literals

log = logging.getLogger(__name__)


@dataclass
class QueryResult:
    sql: str = ""  # as run (the database's dialect), or as generated when invalid
    dialect: str = ""
    valid: bool = False
    error: str | None = None  # "<reason>: <detail>" for invalid SQL, runtime_error, timeout
    error_kind: str | None = None  # invalid | runtime_error | timeout
    columns: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    row_count: int = 0
    truncated: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _foreign_table(tree, schema_name: str | None) -> str | None:
    """The first table named with another schema or a catalog: the known-table check compares bare
    names, so `hr.orders` would pass because `orders` exists in the introspected schema."""
    for table in tree.find_all(exp.Table):
        if table.catalog or (table.db and table.db.lower() != (schema_name or "").lower()):
            return table.sql()
    return None


def _spell_as_introspected(tree: exp.Expression, tables: list[Table]) -> exp.Expression:
    """Table and column names as the database spells them, quoted where case matters.

    The model writes names case-insensitively (SQLite, where it learned, ignores case), but
    PostgreSQL folds an unquoted name to lower case: a table created as "Singer" with a column
    "Singer_ID" is only reachable quoted. Each column is spelled as the table it comes from spells
    it (found in its scope: two tables may spell one name differently), and a bare name in ORDER
    BY / GROUP BY / HAVING that a select alias defines is the alias, left alone."""
    by_name = {t.name.lower(): t for t in tables}

    def respell(identifier, exact: str | None) -> None:
        if isinstance(identifier, exp.Identifier) and exact is not None and (exact != exact.lower()
                                                                             or identifier.quoted):
            identifier.set("this", exact)  # a quoted "cname" is cName too, as in SQLite
            identifier.set("quoted", True)

    def column_of(table: Table, name: str) -> str | None:
        return next((c for c in table.column_names if c.lower() == name.lower()), None)

    def tables_of(scope) -> dict:
        """alias -> (table, named by the table's own name), the enclosing scopes' too (a correlated
        subquery names the outer query's tables), the nearest first."""
        found: dict = {}
        while scope is not None:
            for alias, source in scope.sources.items():
                if isinstance(source, exp.Table):
                    found.setdefault(alias.lower(), (by_name.get(source.name.lower()), not source.alias))
            scope = scope.parent
        return found

    for scope in traverse_scope(tree):
        sources = tables_of(scope)
        own = {alias.lower() for alias, source in scope.sources.items() if isinstance(source, exp.Table)}
        selects = scope.expression.selects if isinstance(scope.expression, exp.Select) else []
        output_aliases = {s.alias.lower() for s in selects if isinstance(s, exp.Alias)}
        for column in list(scope.expression.find_all(exp.Column)):
            if column.find_ancestor(exp.Select) is not scope.expression:
                continue  # a subquery's column, placed in the subquery's own scope
            if column.table:
                table, named_by_table = sources.get(column.table.lower(), (None, False))
                if table is not None and named_by_table:  # `singer.name` after FROM "Singer"
                    respell(column.args.get("table"), table.name)
            elif column.name.lower() in output_aliases and column.find_ancestor(exp.Order, exp.Group, exp.Having):
                continue
            else:
                owners = [t for alias, (t, _) in sources.items() if alias in own and t is not None
                          and column_of(t, column.name)]
                table = owners[0] if len(owners) == 1 else None
            if table is not None:
                respell(column.this, column_of(table, column.name))
    for table in tree.find_all(exp.Table):
        if table.name.lower() in by_name:
            respell(table.this, by_name[table.name.lower()].name)
    return tree


def prepare_sql(sql: str, tables: list[Table], dialect: str,
                schema_name: str | None = None) -> tuple[str, bool, str | None]:
    """(sql in `dialect`, valid, error) for a generated SQLite statement, checked before and after
    transpilation, so a construct that only appears in the target dialect is checked there too.
    Tables may be qualified only with `schema_name`, the introspected schema."""
    checked = check_query(sql, tables)
    if not checked.ok:
        return sql, False, f"{checked.reason}: {checked.detail}"
    foreign = _foreign_table(checked.tree, schema_name)
    if foreign:
        return sql, False, (f"unknown_table: {foreign} is outside the database's schema "
                            f"{schema_name or '(none introspected)'}; name tables without a schema")
    if dialect == "sqlite":
        return sql, True, None
    try:
        # The model's "double-quoted" strings are literals in SQLite only: say so before transpiling.
        tree, _ = sqlite_literals(sqlglot.parse_one(sql, read="sqlite"), tables)
        if dialect == "postgres":
            tree = _spell_as_introspected(tree, tables)
        target = tree.sql(dialect=dialect)
    except SqlglotError as err:
        return sql, False, f"transpile_error: {str(err).splitlines()[0][:200]}"
    checked = check_query(target, tables, dialect)
    if not checked.ok:
        return target, False, f"{checked.reason}: {checked.detail}"
    foreign = _foreign_table(checked.tree, schema_name)
    if foreign:
        return target, False, f"unknown_table: {foreign} is outside the database's schema {schema_name}"
    return target, True, None


# Non-finite floats as strings: JSON has no NaN/Infinity, and Starlette's encoder refuses them (500).
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[str(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():  # PostgreSQL numeric 'NaN', 'Infinity'
            return "NaN" if value.is_nan() else "-Infinity" if value.is_signed() else "Infinity"
        return int(value) if value == value.to_integral_value() else _json_value(float(value))
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (uuid.UUID, datetime.timedelta)):
        return str(value)
    return str(value)


def _is_timeout(err: Exception, backend: str, interrupted: bool) -> bool:
    original = getattr(err, "orig", None) or err
    if backend == "postgresql":
        import psycopg

        return isinstance(original, psycopg.errors.QueryCanceled)
    if backend == "sqlite":
        return isinstance(original, sqlite3.OperationalError) and "interrupted" in str(original)
    return interrupted  # duckdb: our timer's interrupt


def execute_read_only(db: Database, sql: str, max_rows: int | None = None) -> QueryResult:
    """Run `sql` (already in the database's dialect) read-only with the database's time limit and
    at most `max_rows` rows (default: its `max_rows`; never more). No static check here: callers
    check first (`run_candidate`); this layer holds even when they do not. Raises DatabaseError
    only when the database cannot be reached."""
    config = db.config
    cap = min(max_rows or config.max_rows, config.max_rows)
    result = QueryResult(sql=sql, dialect=db.dialect, valid=True)
    started = time.perf_counter()
    timer, interrupted = None, threading.Event()
    with db.connect() as conn:
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()
        try:
            if config.backend == "postgresql":
                cursor.execute("SET TRANSACTION READ ONLY")  # the first statement of the transaction
                cursor.execute(f"SET LOCAL statement_timeout = {int(config.timeout_s * 1000)}")
                # stream(): rows arrive one by one (libpq single-row mode), so only cap + 1 travel,
                # and any statement runs as written (a server-side cursor would take only queries).
                # Closing the stream early cancels the rest and releases the connection's lock.
                stream = cursor.stream(sql)
                try:
                    rows = list(itertools.islice(stream, cap + 1))
                finally:
                    stream.close()
            else:
                if config.backend == "sqlite":
                    lock_read_only(raw)
                    deadline = started + config.timeout_s
                    raw.set_progress_handler(lambda: 1 if time.perf_counter() > deadline else 0, 1000)
                else:
                    def interrupt():
                        interrupted.set()
                        raw.interrupt()
                    # DuckDB runs every statement of a string (the last one's rows come back);
                    # sqlite3 and PostgreSQL's extended protocol refuse more than one themselves.
                    if len(raw.extract_statements(sql)) != 1:
                        raise ValueError("DuckDB here runs exactly one statement per query")
                    timer = threading.Timer(config.timeout_s, interrupt)
                    timer.start()
                cursor.execute(sql)
                rows = cursor.fetchmany(cap + 1) if cursor.description else []
            if cursor.description:
                result.columns = [column[0] for column in cursor.description]
                result.truncated = len(rows) > cap
                result.rows = [[_json_value(v) for v in row] for row in rows[:cap]]
                result.row_count = len(result.rows)
        except Exception as err:
            if _is_timeout(err, config.backend, interrupted.is_set()):
                result.error_kind = "timeout"
                result.error = f"timeout: cancelled after {config.timeout_s:g}s (timeout_s of database {db.name!r})"
            else:
                result.error_kind = "runtime_error"
                line = db.scrub(driver_message(err))
                log.info("database %r: runtime_error: %s", db.name, line)
                result.error = f"runtime_error: database {db.name!r}: {db.redact(line)}"
        finally:
            if timer is not None:
                timer.cancel()
            if config.backend == "sqlite":
                raw.set_progress_handler(None, 0)
                raw.set_authorizer(None)  # the pool's ROLLBACK and the inspector's PRAGMAs need it off
            try:
                cursor.close()
                raw.rollback()  # nothing to keep: read-only
            except Exception as err:
                if not _no_transaction(err):
                    conn.invalidate()  # a connection in a bad state does not go back to the pool
    result.seconds = time.perf_counter() - started
    return result


def _no_transaction(err: Exception) -> bool:
    """DuckDB's answer to a rollback outside a transaction (its cursors autocommit): the connection
    is fine, and invalidating it would open a new one for every query."""
    return type(err).__name__ == "TransactionException" and "no transaction is active" in str(err)


def run_candidate(db: Database, sqlite_sql: str, max_rows: int | None = None,
                  tables: list[Table] | None = None) -> QueryResult:
    """The seam: check a generated SQLite statement against `db`'s schema, transpile it to `db`'s
    dialect and, when valid, execute it read-only. Invalid SQL comes back unrun (valid false, the
    reason in error); runtime errors and timeouts come back in error/error_kind, never raised."""
    if tables is None:
        tables = db.schema().tables
    sql, valid, error = prepare_sql(sqlite_sql, tables, db.dialect, db.schema_name)
    if not valid:
        return QueryResult(sql=sql, dialect=db.dialect, valid=False, error=error, error_kind="invalid")
    return execute_read_only(db, sql, max_rows)
