"""Run one read-only query on sqlite with a time limit and a row cap; compare results.

Defense in depth: callers check statements with `sql.validate` first, and every connection here
also carries an authorizer that denies anything but reading and calls only the allow-listed
functions of `sql.functions`, so a statement that slips past the static check still cannot write,
attach, change pragmas or load an extension; and caps on value and statement size, so it cannot
allocate the evaluator's memory away either.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlfoundry.sql.functions import SQLITE_FUNCTIONS

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_ROWS = 100_000
# Largest string or blob a query may build. sqlite's default is 1e9 bytes, so printf('%.*c', 1e9,
# 'x') or a replace() chain allocates ~1 GB inside the evaluator before the time limit can fire;
# no value in the Spider databases comes near 1 MB, and an answer built from the schema's values
# does not either. Over the cap sqlite fails the query with "string or blob too big".
MAX_VALUE_BYTES = 1_000_000
# Longest statement sqlite accepts: predictions and gold queries are a few hundred bytes.
MAX_SQL_BYTES = 100_000


def _read_only_authorizer(action, _table, function, *_):
    if action == sqlite3.SQLITE_FUNCTION:  # sqlite spells a name as the query wrote it
        return sqlite3.SQLITE_OK if (function or "").lower() in SQLITE_FUNCTIONS else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def lock_read_only(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.execute("PRAGMA query_only = ON")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
    conn.set_authorizer(_read_only_authorizer)
    return conn


def open_read_only(path: str) -> sqlite3.Connection:
    """A real database file opened with mode=ro (the file itself cannot be written).

    The URI comes from `Path.as_uri()`, which percent-encodes the path: in a hand-built
    `file:{path}?mode=ro`, a `#` or `?` in the path ends it early, and sqlite opens (or creates)
    a different file, read-write.
    """
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.text_factory = lambda data: data.decode("utf-8", errors="replace")
    return lock_read_only(conn)


@dataclass
class ExecResult:
    rows: list[tuple] | None
    error: str | None = None  # runtime_error | timeout | row_cap
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def run_query(conn: sqlite3.Connection, sql: str, timeout_s: float = DEFAULT_TIMEOUT_S,
              max_rows: int = DEFAULT_MAX_ROWS) -> ExecResult:
    start = time.perf_counter()
    deadline = start + timeout_s
    conn.set_progress_handler(lambda: 1 if time.perf_counter() > deadline else 0, 1000)
    try:
        cursor = conn.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)
    except sqlite3.OperationalError as err:
        elapsed = time.perf_counter() - start
        if "interrupted" in str(err):
            return ExecResult(None, "timeout", f"over {timeout_s:g}s", elapsed)
        return ExecResult(None, "runtime_error", str(err)[:200], elapsed)
    except (sqlite3.Error, ValueError, OverflowError) as err:
        return ExecResult(None, "runtime_error", str(err)[:200], time.perf_counter() - start)
    finally:
        conn.set_progress_handler(None, 0)
    elapsed = time.perf_counter() - start
    if len(rows) > max_rows:
        return ExecResult(None, "row_cap", f"more than {max_rows} rows", elapsed)
    return ExecResult([tuple(row) for row in rows], seconds=elapsed)


def _normalize_value(value):
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 6)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _normalize_rows(rows: list[tuple]) -> list[tuple]:
    return [tuple(_normalize_value(v) for v in row) for row in rows]


def results_match(gold: list[tuple], predicted: list[tuple], ordered: bool) -> bool:
    """Multiset equality of rows; list equality when the gold query orders its result."""
    gold, predicted = _normalize_rows(gold), _normalize_rows(predicted)
    if ordered:
        return gold == predicted
    return Counter(gold) == Counter(predicted)
