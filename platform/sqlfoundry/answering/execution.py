"""Running candidates: the `Execute` seam and the synthesized databases behind it by default.

An `Execute` takes one SQL statement and returns its rows, or raises `QueryFailed`. The pipeline
runs every candidate on a list of them: by default one per database synthesized from the schema
(sql.synthdb, as the evaluator builds them); a real read-only database is one more `Execute`
(e.g. `sqlite_execute(open_read_only(path), timeout_s=2)`, or a client of another engine) passed instead.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable

from sqlfoundry.sql.execute import DEFAULT_MAX_ROWS, run_query
from sqlfoundry.sql.schema import Table, render_schema
from sqlfoundry.sql.synthdb import build_databases, collect_literals


class QueryFailed(Exception):
    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind, self.detail = kind, detail


Execute = Callable[[str], list[tuple]]


def sqlite_execute(conn: sqlite3.Connection, timeout_s: float, max_rows: int = DEFAULT_MAX_ROWS) -> Execute:
    """An `Execute` over a (read-only locked) sqlite connection, with the sandbox's time limit."""
    def execute(sql: str) -> list[tuple]:
        result = run_query(conn, sql, timeout_s, max_rows)
        if not result.ok:
            raise QueryFailed(result.error, result.detail)
        return result.rows
    return execute


def _literal_key(tables: list[Table], sqls: list[str]) -> tuple:
    literals = collect_literals(sqls, tables)
    return tuple(sorted((column, repr(value)) for column, values in literals.by_column.items() for value in set(values)))


class DatabaseCache:
    """Synthesized databases per schema, least recently used dropped past `size` (0: no caching).

    The key is the schema and the literal values the candidates compare columns with (the
    synthesizer seeds rows with them, so filters select something): a schema asked about again
    with the same values, as a retried or repeated request is, reuses its databases."""

    def __init__(self, size: int = 256):
        self.size = size
        self._sets: OrderedDict[tuple, list[sqlite3.Connection]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def databases(self, tables: list[Table], sqls: list[str], k: int, seed: int) -> list[sqlite3.Connection]:
        key = (render_schema(tables), _literal_key(tables, sqls), k, seed)
        with self._lock:
            if key in self._sets:
                self.hits += 1
                self._sets.move_to_end(key)
                return self._sets[key]
        conns = build_databases(tables, sqls, k, seed)
        with self._lock:
            self.misses += 1
            if self.size > 0:
                self._sets[key] = conns
                while len(self._sets) > self.size:
                    for conn in self._sets.popitem(last=False)[1]:
                        conn.close()
        return conns

    def __len__(self) -> int:
        return len(self._sets)
