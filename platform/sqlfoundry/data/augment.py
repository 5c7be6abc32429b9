"""Schema augmentation: give each row the kind of schema real users have, keep its gold SQL.

In sql-create-context the CREATE TABLE context holds exactly the columns the gold SQL uses, so a
model learns "use every column you are given". An augmented row gets, from a `Vocabulary` built
over a set of rows:
- fuller tables: a recurring table name (Spider's `singer`, `head`, ...) gets the columns other
  rows show for it (WikiSQL's generic `table_name_N` are different tables and never merged);
- distractor columns: k names and types from the rows' column pool, at random positions;
- distractor tables: m tables of other rows, in random order with the real ones;
- key lines: PRIMARY KEY for id-like columns, FOREIGN KEY for join and `<table>_id` columns.
No added name is one the gold uses (columns, tables, aliases, "double-quoted" strings, which sqlite
reads as a column when one has that name) or one the table already has, case-insensitively. A gold
with `SELECT *` gets distractor tables only: a new column would change its result. Every augmented
row is then checked on synthesized databases (`augment_check`); a row that fails stays as it was.

Names are split into two disjoint pools by a stable hash (`name_pool`): training adds only names of
the even pool, the evaluation's realistic view only names of the odd pool, so no name the model saw
added in training is an eval distractor. Everything is seeded per row (seed, row content, copy
number): the same seed gives the same rows whatever their order or count.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlfoundry.config.schema import AugmentConfig
from sqlfoundry.data.augment_check import gold_unchanged
from sqlfoundry.sql.schema import Column, ForeignKey, SchemaError, Table, parse_schema, render_schema
from sqlfoundry.sql.synthdb import merge_tables

TRAIN_POOL, EVAL_POOL = 0, 1
# WikiSQL's `table_name_N` names are reused by unrelated tables, so they are never merged; its
# `table_<id>` names (also WikiSQL origin, see data/mix.py) name one table each and merge safely.
_GENERIC_TABLE = re.compile(r"table_name_\d+", re.IGNORECASE)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ROWID_ALIASES = {"rowid", "oid", "_rowid_"}  # sqlite's implicit row id: a column by that name shadows it


def name_pool(name: str) -> int:
    """TRAIN_POOL or EVAL_POOL: the parity of the sha256 of the lower-cased name (stable everywhere)."""
    return hashlib.sha256(name.lower().encode()).digest()[-1] % 2


@dataclass
class Vocabulary:
    """What augmentation may add, all from one name pool."""
    pool: int
    table_columns: dict[str, tuple[Column, ...]]  # lower table name -> its columns across rows (named tables)
    columns: list[Column]  # one per distinct column name
    tables: list[Table]  # distinct tables of the rows, reduced to the pool's column names


def _usable(name: str, pool: int) -> bool:
    return bool(_PLAIN_NAME.fullmatch(name)) and name.lower() not in _ROWID_ALIASES and name_pool(name) == pool


def build_vocabulary(rows: list[dict], pool: int) -> Vocabulary:
    table_columns: dict[str, dict[str, Column]] = {}
    columns: dict[str, Column] = {}
    tables: dict[tuple, Table] = {}
    for row in rows:
        try:
            parsed = merge_tables(parse_schema(row["context"]))
        except SchemaError:
            continue
        for table in parsed:
            unique: dict[str, Column] = {}  # some contexts declare `editor_id` and `Editor_ID`: sqlite refuses that
            for column in table.columns:
                if _usable(column.name, pool):
                    unique.setdefault(column.name.lower(), column)
            kept = tuple(unique.values())
            for column in kept:
                columns.setdefault(column.name.lower(), column)
            if not _GENERIC_TABLE.fullmatch(table.name):
                known = table_columns.setdefault(table.name.lower(), {})
                for column in kept:
                    known.setdefault(column.name.lower(), column)
            if kept and _usable(table.name, pool):
                key = (table.name.lower(), tuple(c.name.lower() for c in kept))
                tables.setdefault(key, Table(table.name, kept))
    return Vocabulary(pool, {name: tuple(cols.values()) for name, cols in table_columns.items()},
                      list(columns.values()), list(tables.values()))


def gold_names(tree: exp.Expression) -> set[str]:
    """Every name in the gold, lower-cased: columns, tables, aliases, "double-quoted" strings."""
    return {node.name.lower() for node in tree.find_all(exp.Identifier)} | \
        {node.name.lower() for node in tree.find_all(exp.Table)}


def _selects_star(tree: exp.Expression) -> bool:
    return any(not isinstance(star.parent, exp.Count) for star in tree.find_all(exp.Star))


def _insert(rng: random.Random, columns: list[Column], new: list[Column]) -> None:
    for column in new:
        columns.insert(rng.randint(0, len(columns)), column)


def _draw_columns(rng: random.Random, pool: list[Column], count: int, taken: set[str]) -> list[Column]:
    """`count` columns of `pool` not in `taken` (which grows); fewer when the pool runs out."""
    drawn: list[Column] = []
    for _ in range(count * 20):  # rejection sampling: the pool is large, `taken` small
        if len(drawn) == count or not pool:
            break
        column = rng.choice(pool)
        if column.name.lower() not in taken:
            taken.add(column.name.lower())
            drawn.append(column)
    return drawn


def _widen(table: Table, vocabulary: Vocabulary, config: AugmentConfig, rng: random.Random,
           forbidden: set[str]) -> Table:
    columns = list(table.columns)
    taken = forbidden | {c.name.lower() for c in columns}
    room = max(0, config.max_table_columns - len(columns))
    if config.fuller_tables and not _GENERIC_TABLE.fullmatch(table.name):
        known = [c for c in vocabulary.table_columns.get(table.name.lower(), ()) if c.name.lower() not in taken]
        fuller = rng.sample(known, min(len(known), room))  # all of them unless the table is full
        taken |= {c.name.lower() for c in fuller}
        _insert(rng, columns, fuller)
        room -= len(fuller)
    distractors = _draw_columns(rng, vocabulary.columns, min(room, rng.randint(*config.distractor_columns)), taken)
    _insert(rng, columns, distractors)
    return Table(table.name, tuple(columns), table.primary_key, table.foreign_keys)


def _draw_tables(rng: random.Random, vocabulary: Vocabulary, count: int, taken: set[str]) -> list[Table]:
    drawn: list[Table] = []
    for _ in range(count * 20):
        if len(drawn) == count or not vocabulary.tables:
            break
        table = rng.choice(vocabulary.tables)
        if table.name.lower() not in taken:
            taken.add(table.name.lower())
            drawn.append(table)
    return drawn


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") and len(name) > 3 else name


def _id_like(table: str, column: str) -> bool:
    table, column = table.lower(), column.lower()
    return column == "id" or column in {f"{t}{sep}id" for t in (table, _singular(table)) for sep in ("_", "")}


def _join_pairs(tree: exp.Expression, tables: dict[str, Table]) -> list[tuple[str, str, str, str]]:
    """(table, column, table, column) of each `JOIN ... ON a.x = b.y` between tables of the schema."""
    aliases = {t.alias_or_name.lower(): t.name.lower() for t in tree.find_all(exp.Table)}
    pairs = []
    for join in tree.find_all(exp.Join):
        on = join.args.get("on")
        for eq in (on.find_all(exp.EQ) if on is not None else ()):
            left, right = eq.this, eq.expression
            if isinstance(left, exp.Column) and isinstance(right, exp.Column) and left.table and right.table:
                a, b = aliases.get(left.table.lower()), aliases.get(right.table.lower())
                if a in tables and b in tables and a != b:
                    pairs.append((a, left.name, b, right.name))
    return pairs


def _column(table: Table, name: str) -> str | None:
    return next((c.name for c in table.columns if c.name.lower() == name.lower()), None)


def add_key_lines(tables: list[Table], tree: exp.Expression) -> list[Table]:
    """PRIMARY KEY: an existing key, else the first id-like column (`id`, `<table>_id`, `<table>id`).
    FOREIGN KEY: the non-key side of a gold join whose other side is a primary key, and any column
    named like another table's key (`head_id` -> head(head_id), `student_id` -> student(id))."""
    by_name = {t.name.lower(): t for t in tables}
    primary = {}
    for t in tables:
        key = t.primary_key or tuple(c.name for c in t.columns if _id_like(t.name, c.name))[:1]
        primary[t.name.lower()] = key
    foreign: dict[str, dict[str, ForeignKey]] = {t.name.lower(): {} for t in tables}

    def link(source: Table, column: str, target: Table) -> None:
        if primary[source.name.lower()] != (column,) and column.lower() not in foreign[source.name.lower()]:
            foreign[source.name.lower()][column.lower()] = ForeignKey((column,), target.name,
                                                                      primary[target.name.lower()])

    for a, x, b, y in _join_pairs(tree, by_name):
        x, y = _column(by_name[a], x), _column(by_name[b], y)
        if x is None or y is None:
            continue
        if primary[a] == (x,):
            link(by_name[b], y, by_name[a])
        elif primary[b] == (y,):
            link(by_name[a], x, by_name[b])
    for source in tables:
        for column in source.columns:
            for target in tables:
                key = primary[target.name.lower()]
                if target is source or len(key) != 1:
                    continue
                if column.name.lower() == key[0].lower() != "id" or (
                        key[0].lower() == "id" and _id_like(target.name, column.name) and column.name.lower() != "id"):
                    link(source, column.name, target)
    return [Table(t.name, t.columns, primary[t.name.lower()],
                  t.foreign_keys or tuple(foreign[t.name.lower()].values())) for t in tables]


@dataclass
class Augmented:
    row: dict
    status: str  # AUGMENTED, TABLES_ONLY (a SELECT * gold: tables added, no columns), or why it failed


AUGMENTED, TABLES_ONLY = "augmented", "tables_only"


def augment_row(row: dict, vocabulary: Vocabulary, config: AugmentConfig, rng: random.Random) -> Augmented:
    try:
        original = merge_tables(parse_schema(row["context"]))
        tree = sqlglot.parse_one(row["answer"], read="sqlite")
    except SchemaError:
        return Augmented(row, "schema_does_not_parse")
    except (SqlglotError, ValueError):
        return Augmented(row, "gold_does_not_parse")
    if tree is None:
        return Augmented(row, "gold_does_not_parse")
    forbidden = gold_names(tree) | {c.name.lower() for t in original for c in t.columns}
    star = _selects_star(tree)
    tables = original if star else [_widen(t, vocabulary, config, rng, forbidden) for t in original]
    taken = forbidden | {t.name.lower() for t in original}
    tables = tables + _draw_tables(rng, vocabulary, rng.randint(*config.distractor_tables), taken)
    rng.shuffle(tables)
    if config.key_lines:
        tables = add_key_lines(tables, tree)
    context = render_schema(tables)
    if context == row["context"]:
        return Augmented(row, "nothing_to_add")
    try:
        reparsed = parse_schema(context)
        reason = gold_unchanged(original, reparsed, row["answer"], tree, config.verify_databases,
                                rng.randrange(2**31))
    except SchemaError:
        reason = "augmented_schema_does_not_parse"
    except sqlite3.Error:  # a schema sqlite cannot hold (e.g. a column declared twice)
        reason = "schema_not_sqlite"
    if reason is not None:
        return Augmented(row, reason)
    return Augmented({**row, "context": context}, TABLES_ONLY if star else AUGMENTED)


# The evaluation's realistic-schema view of held-out rows (`sqlfoundry eval --view realistic`, the
# tune metric, the eval rows of an augmented training run): fixed, whatever data.augment says, so
# every run is measured on the same schemas. Eval-pool names only, another seed; no fuller tables
# (the held-out rows' own tables stay as the gold knows them, plus distractors).
REALISTIC_VIEW = AugmentConfig(enabled=True, probability=1.0, fuller_tables=False, distractor_columns=4,
                               distractor_tables=2, key_lines=True, max_table_columns=16, seed=20261)


@dataclass
class AugmentStats:
    augmented: int = 0  # rows whose schema changed (tables_only included)
    tables_only: int = 0  # SELECT * golds: distractor tables only
    skipped: int = 0  # not drawn (config.probability)
    failed: dict[str, int] = field(default_factory=dict)  # reason -> rows kept unaugmented
    seconds: float = 0.0


def augment_rows(rows: list[dict], vocabulary: Vocabulary, config: AugmentConfig,
                 salt: str = "train") -> tuple[list[dict], AugmentStats]:
    """Augment each row with probability config.probability; the rest, and failures, stay as they are."""
    start = time.perf_counter()
    stats, failed = AugmentStats(), Counter()
    copies: Counter[str] = Counter()
    out = []
    for row in rows:
        key = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:16]
        rng = random.Random(f"{salt}:{config.seed}:{key}:{copies[key]}")  # copies of a row differ
        copies[key] += 1
        if rng.random() >= config.probability:
            stats.skipped += 1
            out.append(row)
            continue
        result = augment_row(row, vocabulary, config, rng)
        if result.status in (AUGMENTED, TABLES_ONLY):
            stats.augmented += 1
            stats.tables_only += result.status == TABLES_ONLY
        else:
            failed[result.status] += 1
        out.append(result.row)
    stats.failed = dict(sorted(failed.items()))
    stats.seconds = round(time.perf_counter() - start, 3)
    return out, stats


def realistic_view(rows: list[dict], pool_rows: list[dict] | None = None) -> tuple[list[dict], AugmentStats]:
    """`rows` with REALISTIC_VIEW schemas; names drawn from `pool_rows` (default: `rows`), eval pool only."""
    vocabulary = build_vocabulary(pool_rows if pool_rows is not None else rows, EVAL_POOL)
    return augment_rows(rows, vocabulary, REALISTIC_VIEW, salt="eval")
