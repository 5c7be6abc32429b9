"""Proof that an augmented schema leaves the gold query's answer unchanged.

The evaluator synthesizes databases from the schema it is given (sqlfoundry.sql.synthdb, filled with
the gold's literals). Here the databases are synthesized that way for the AUGMENTED schema, with the
literals the gold has on the ORIGINAL schema (a "double-quoted" name is a string there, and its
rows must exist to tell it from a column), and each is projected onto the original schema (same
rows, only the original tables and columns). The gold must run on both and return the same rows:
then every added column and table is invisible to it (no ambiguous column, no "double-quoted
string" turned into a column, no wider `SELECT *`).
"""

from __future__ import annotations

import sqlite3

from sqlglot import exp

from sqlfoundry.sql.execute import lock_read_only, results_match, run_query
from sqlfoundry.sql.schema import Table
from sqlfoundry.sql.synthdb import build_database, collect_literals, merge_tables, sqlite_affinity

GOLD_ERROR = "gold_error"  # the gold does not run on its own schema
GOLD_FAILS_AUGMENTED = "gold_fails_on_augmented"
RESULT_CHANGED = "result_changed"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _project(source: sqlite3.Connection, tables: list[Table]) -> sqlite3.Connection:
    """A new database with `tables` holding the rows of the same-named tables of `source`."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    for table in tables:
        names = ", ".join(_quote(c.name) for c in table.columns)
        columns = ", ".join(f"{_quote(c.name)} {sqlite_affinity(c.type)}" for c in table.columns)
        conn.execute(f"CREATE TABLE {_quote(table.name)} ({columns})")
        rows = source.execute(f"SELECT {names} FROM {_quote(table.name)}").fetchall()
        marks = ", ".join("?" for _ in table.columns)
        conn.executemany(f"INSERT INTO {_quote(table.name)} VALUES ({marks})", rows)
    conn.commit()
    return lock_read_only(conn)


def gold_unchanged(original: list[Table], augmented: list[Table], gold: str, gold_tree: exp.Expression,
                   k: int, seed: int) -> str | None:
    """None when the gold returns the same rows on both schemas on all `k` databases, else why not."""
    ordered = bool(gold_tree.args.get("order"))
    original = merge_tables(original)
    literals = collect_literals([gold], original)
    conns = [build_database(augmented, literals, seed * 1000 + i) for i in range(k)]
    try:
        for conn in conns:
            projected = _project(conn, original)
            try:
                before = run_query(projected, gold)
            finally:
                projected.close()
            if not before.ok:
                return GOLD_ERROR
            after = run_query(conn, gold)
            if not after.ok:
                return GOLD_FAILS_AUGMENTED
            if not results_match(before.rows, after.rows, ordered):
                return RESULT_CHANGED
    finally:
        for conn in conns:
            conn.close()
    return None
