"""Synthesize sqlite databases for a schema-only example (sql-create-context has no rows).

K databases per example, each with a different seed, different row counts and values. Values come
from the literals of the gold and predicted SQL (so filters select some rows) and from random
values of each column's type (so they miss others). A prediction must match gold on every database,
which keeps lucky matches out. `nocase=True` declares text columns COLLATE NOCASE, so string
comparisons ignore letter case (the "case-insensitive EX" beside the strict one).
"""

from __future__ import annotations

import functools
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlfoundry.sql.schema import Table
from sqlfoundry.sql.execute import lock_read_only

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.In, exp.Between)
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


@functools.lru_cache(maxsize=4096)  # a handful of distinct types, built by sqlglot per column otherwise
def sqlite_affinity(sql_type: str) -> str:
    """Map a DDL type (through sqlglot's type classes) to sqlite's INTEGER / REAL / TEXT."""
    if not sql_type:
        return "TEXT"
    try:
        data_type = exp.DataType.build(sql_type, dialect="sqlite")
    except (SqlglotError, ValueError):
        return "TEXT"
    if data_type.is_type(*exp.DataType.INTEGER_TYPES, exp.DataType.Type.BOOLEAN):
        return "INTEGER"
    if data_type.is_type(*exp.DataType.REAL_TYPES):
        return "REAL"
    return "TEXT"


@dataclass
class Literals:
    by_column: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    strings: list[str] = field(default_factory=list)
    numbers: list[float] = field(default_factory=list)
    # column -> values, one map per query: rows built from one map satisfy several of its filters at once
    per_query: list[dict[str, list]] = field(default_factory=list)


def _literal_value(node: exp.Expression, known_columns: set[str]):
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        try:
            number = float(node.this)
        except ValueError:
            return None
        # beyond 2**62 (and jitter) sqlite has no INTEGER: keep it a REAL rather than overflow
        return int(number) if number.is_integer() and abs(number) < 2**62 else number
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        value = _literal_value(node.this, known_columns)
        return -value if value is not None else None
    if isinstance(node, exp.Column) and not node.table and node.this.quoted \
            and node.name.lower() not in known_columns:
        return node.name  # sqlite reads an unknown "double-quoted" name as a string
    return None


def collect_literals(sqls: list[str], tables: list[Table]) -> Literals:
    known = {c.name.lower() for t in tables for c in t.columns}
    literals = Literals()
    for sql in sqls:
        try:
            tree = sqlglot.parse_one(sql, read="sqlite")
        except (SqlglotError, ValueError):
            continue
        if tree is None:
            continue
        query_map: dict[str, list] = defaultdict(list)
        for comparison in tree.find_all(*_COMPARISONS):
            columns = [c.name.lower() for c in comparison.find_all(exp.Column) if c.name.lower() in known]
            for node in comparison.iter_expressions():
                nodes = node.expressions if isinstance(node, exp.Tuple) else [node]
                for item in list(nodes) + list(comparison.args.get("expressions") or []):
                    value = _literal_value(item, known)
                    if value is None:
                        continue
                    if isinstance(value, str):
                        literals.strings.append(value.strip("%"))
                    else:
                        literals.numbers.append(value)
                    for column in columns:
                        stored = value.strip("%") if isinstance(value, str) else value
                        literals.by_column[column].append(stored)
                        query_map[column].append(stored)
        if query_map:
            literals.per_query.append(dict(query_map))
    return literals


def _jitter(rng: random.Random, value, affinity: str):
    if isinstance(value, (int, float)) and affinity != "TEXT" and rng.random() < 0.5:
        return value + rng.choice((-2, -1, 1, 2))  # just either side of a threshold
    return value


def _random_value(rng: random.Random, affinity: str, column: str, literals: Literals, pool: list):
    if rng.random() < 0.05:
        return None
    targeted = literals.by_column.get(column.lower())
    if targeted and rng.random() < 0.5:
        return _jitter(rng, rng.choice(targeted), affinity)
    if affinity == "TEXT":
        if literals.strings and rng.random() < 0.2:
            return rng.choice(literals.strings)
        return rng.choice(pool)
    if literals.numbers and rng.random() < 0.3:
        base = rng.choice(literals.numbers)
        return base + rng.choice((-1, 0, 1)) if affinity == "INTEGER" else base * rng.uniform(0.5, 1.5)
    if affinity == "INTEGER":
        return rng.randint(0, 6) if rng.random() < 0.5 else rng.randint(-50, 3000)
    return round(rng.uniform(-10, 1000), 2)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def merge_tables(tables: list[Table]) -> list[Table]:
    """One table per name: contexts sometimes declare a table twice with different columns."""
    merged: dict[str, Table] = {}
    for table in tables:
        key = table.name.lower()
        if key not in merged:
            merged[key] = table
            continue
        known = {c.name.lower() for c in merged[key].columns}
        extra = tuple(c for c in table.columns if c.name.lower() not in known)
        merged[key] = Table(merged[key].name, merged[key].columns + extra)
    return list(merged.values())


def build_database(tables: list[Table], literals: Literals, seed: int, nocase: bool = False) -> sqlite3.Connection:
    rng = random.Random(seed)
    tables = merge_tables(tables)
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    # Text pools are shared by columns of the same name, so joins on them (votes.state =
    # area_code_state.state) find partners; a few values per pool give GROUP BY something to do.
    pools: dict[str, list[str]] = {}
    for column in (c for t in tables for c in t.columns):
        pools.setdefault(column.name.lower(),
                         [f"{rng.choice(_WORDS)} {rng.randint(1, 99)}" for _ in range(rng.randint(2, 5))])
    for table in tables:
        affinities = [sqlite_affinity(c.type) for c in table.columns]
        columns = ", ".join(
            f"{_quote(c.name)} {a}{' COLLATE NOCASE' if nocase and a == 'TEXT' else ''}"
            for c, a in zip(table.columns, affinities)
        )
        conn.execute(f"CREATE TABLE IF NOT EXISTS {_quote(table.name)} ({columns})")
        def random_row():
            return [_random_value(rng, a, c.name, literals, pools[c.name.lower()]) for c, a in zip(table.columns, affinities)]

        rows = [random_row() for _ in range(rng.randint(3, 9))]
        for query_map in literals.per_query:  # rows that meet one query's filters together
            for _ in range(rng.randint(0, 2)):
                row = random_row()
                for index, (column, affinity) in enumerate(zip(table.columns, affinities)):
                    if column.name.lower() in query_map:
                        row[index] = _jitter(rng, rng.choice(query_map[column.name.lower()]), affinity)
                rows.append(row)
        rng.shuffle(rows)
        marks = ", ".join("?" for _ in table.columns)
        conn.executemany(f"INSERT INTO {_quote(table.name)} VALUES ({marks})", rows)
    conn.commit()
    return lock_read_only(conn)


def build_databases(tables: list[Table], sqls: list[str], k: int, seed: int, nocase: bool = False) -> list[sqlite3.Connection]:
    literals = collect_literals(sqls, tables)
    return [build_database(tables, literals, seed * 1000 + i, nocase) for i in range(k)]
