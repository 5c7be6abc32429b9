"""Schema augmentation (sqlfoundry.data.augment): table-driven, on real sqlite."""

import itertools
import random
import sqlite3

import pytest
import sqlglot

from sqlfoundry.config.schema import AugmentConfig
from sqlfoundry.data.augment import (AUGMENTED, EVAL_POOL, REALISTIC_VIEW, TABLES_ONLY, TRAIN_POOL, add_key_lines,
                                     augment_row, augment_rows, build_vocabulary, gold_names, name_pool,
                                     realistic_view)
from sqlfoundry.data.augment_check import RESULT_CHANGED, gold_unchanged
from sqlfoundry.data.synth import generate_rows
from sqlfoundry.evaluation.scoring import score_schema_only
from sqlfoundry.sql.schema import Column, ForeignKey, Table, parse_schema, render_schema


def names_in(pool: int, prefix: str, count: int) -> list[str]:
    return list(itertools.islice((f"{prefix}{i}" for i in itertools.count() if name_pool(f"{prefix}{i}") == pool),
                                 count))


def pool_rows(names: list[str], tables: int = 40) -> list[dict]:
    """Rows whose schemas spread `names` over `tables` named tables (so distractor tables exist)."""
    rows = []
    for i, table in enumerate(names_in(TRAIN_POOL, "tbl_", tables)):
        columns = ", ".join(f"{n} VARCHAR" for n in names[i % len(names):][:3] or names[:3])
        rows.append({"question": "q", "context": f"CREATE TABLE {table} ({columns})", "answer": "SELECT 1"})
    return rows


# Names the gold uses, planted in the pool as distractor candidates (all of the training pool):
# sqlite reads "winner" as a string only while no column is called winner.
TRAPS = ["winner", "Winner", "WINNER", "outcome", "T1", "T2", "head_id", "stock", "price"]
assert all(name_pool(n) == TRAIN_POOL for n in TRAPS)
VOCABULARY = build_vocabulary(pool_rows(names_in(TRAIN_POOL, "extra_", 30) + TRAPS), TRAIN_POOL)
WIDE = AugmentConfig(enabled=True, probability=1.0, fuller_tables=False, distractor_columns=4, distractor_tables=2,
                     max_table_columns=64)

GOLDS = [  # (context, gold): every kind of gold the data has
    ("CREATE TABLE table_name_85 (opponent VARCHAR, outcome VARCHAR)",
     'SELECT opponent FROM table_name_85 WHERE outcome = "winner"'),
    ("CREATE TABLE table_name_85 (opponent VARCHAR, outcome VARCHAR)",
     'SELECT opponent FROM table_name_85 WHERE outcome = "Winner" OR opponent = "T1"'),
    ("CREATE TABLE products (stock INTEGER, price INTEGER)", "SELECT COUNT(*), MAX(price), AVG(stock) FROM products"),
    ("CREATE TABLE products (stock INTEGER, price INTEGER)",
     "SELECT stock, SUM(price) FROM products GROUP BY stock HAVING COUNT(*) > 1"),
    ("CREATE TABLE products (stock INTEGER, price INTEGER)", "SELECT price FROM products ORDER BY stock DESC LIMIT 2"),
    ("CREATE TABLE head (age INTEGER, head_id INTEGER); CREATE TABLE management (head_id INTEGER, outcome VARCHAR)",
     "SELECT T1.age FROM head AS T1 JOIN management AS T2 ON T1.head_id = T2.head_id WHERE T2.outcome = 'Yes'"),
    ("CREATE TABLE head (age INTEGER, head_id INTEGER); CREATE TABLE management (head_id INTEGER, outcome VARCHAR)",
     "SELECT age FROM head WHERE NOT head_id IN (SELECT head_id FROM management)"),
    ("CREATE TABLE head (age INTEGER, head_id INTEGER); CREATE TABLE management (head_id INTEGER, outcome VARCHAR)",
     "SELECT head_id FROM head INTERSECT SELECT head_id FROM management WHERE outcome LIKE '%es'"),
    ("CREATE TABLE head (age INTEGER, head_id INTEGER)", "SELECT * FROM head WHERE age > 30"),
    ("CREATE TABLE head (age INTEGER, head_id INTEGER); CREATE TABLE management (head_id INTEGER, outcome VARCHAR)",
     "SELECT T1.* FROM head AS T1 JOIN management AS T2 ON T1.head_id = T2.head_id"),
]

# Rows a hand-written database holds for each table of GOLDS (name -> rows of the original columns).
DATA = {
    "table_name_85": [("ann", "winner"), ("bob", "loser"), ("T1", "runner-up"), ("cy", "Winner")],
    "products": [(1, 10), (1, 30), (2, 20), (5, 5)],
    "head": [(25, 1), (41, 2), (56, 3), (33, 4)],
    "management": [(1, "Yes"), (3, "No"), (3, "Yes"), (9, "yes")],
}


ORIGINAL_TABLES = {t.name: t for context, _ in GOLDS for t in parse_schema(context)}


def added_columns(original: list[Table], augmented: list[Table]) -> dict[str, list[str]]:
    before = {t.name.lower(): {c.name.lower() for c in t.columns} for t in original}
    return {t.name.lower(): [c.name for c in t.columns if c.name.lower() not in before[t.name.lower()]]
            for t in augmented if t.name.lower() in before}


def run_on_hand_database(context: str, gold: str) -> list[tuple]:
    """Execute the DDL itself in sqlite, insert DATA by column name (added columns stay NULL), run gold."""
    conn = sqlite3.connect(":memory:")
    for statement in context.split("; "):
        conn.execute(statement)
    for table in parse_schema(context):
        if table.name in DATA:
            original = ORIGINAL_TABLES[table.name]
            names = ", ".join(c.name for c in original.columns)
            marks = ", ".join("?" for _ in original.columns)
            conn.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", DATA[table.name])
    return conn.execute(gold).fetchall()


@pytest.mark.parametrize("context, gold", GOLDS)
@pytest.mark.parametrize("seed", range(6))
def test_distractors_never_collide_and_counts_are_as_configured(context, gold, seed):
    row = {"question": "q", "context": context, "answer": gold}
    result = augment_row(row, VOCABULARY, WIDE, random.Random(seed))
    star = "*" in gold.replace("COUNT(*)", "")
    assert result.status == (TABLES_ONLY if star else AUGMENTED), result
    original, augmented = parse_schema(context), parse_schema(result.row["context"])
    forbidden = gold_names(sqlglot.parse_one(gold, read="sqlite")) | {c.name.lower() for t in original for c in t.columns}
    for table, new in added_columns(original, augmented).items():
        assert not {n.lower() for n in new} & forbidden, (table, new)
        assert len(new) == (0 if star else 4), new
    table_names = [t.name.lower() for t in augmented]
    assert len(table_names) == len(set(table_names)) == len(original) + 2
    assert not (set(table_names) - {t.name.lower() for t in original}) & forbidden
    for table in augmented:
        names = [c.name.lower() for c in table.columns]
        assert len(names) == len(set(names)), table


@pytest.mark.parametrize("context, gold", GOLDS)
@pytest.mark.parametrize("seed", range(4))
def test_gold_result_is_unchanged_on_augmented_schemas(context, gold, seed):
    row = {"question": "q", "context": context, "answer": gold}
    augmented = augment_row(row, VOCABULARY, WIDE, random.Random(seed)).row["context"]
    assert augmented != context
    ordered = "ORDER BY" in gold
    before, after = run_on_hand_database(context, gold), run_on_hand_database(augmented, gold)
    assert (before if ordered else sorted(before, key=repr)) == (after if ordered else sorted(after, key=repr))
    assert before, "the hand-written data should give every gold some rows"
    score = score_schema_only(augmented, gold, gold, k=3, seed=seed)  # the evaluator's own databases
    assert score.ex is True, score


@pytest.mark.parametrize("context, gold, added", [
    # a column named like the gold's "double-quoted string" turns the string into a column reference
    ("CREATE TABLE table_name_85 (opponent VARCHAR, outcome VARCHAR)",
     'SELECT opponent FROM table_name_85 WHERE outcome = "winner"', Column("winner", "VARCHAR")),
    # SELECT * returns every column: one more column is one more value per row
    ("CREATE TABLE head (age INTEGER, head_id INTEGER)", "SELECT * FROM head WHERE age > 30", Column("x1", "INT")),
    # an unqualified column that a joined table now also has is ambiguous
    ("CREATE TABLE head (age INTEGER, head_id INTEGER); CREATE TABLE management (head_id INTEGER)",
     "SELECT age FROM head AS T1 JOIN management AS T2 ON T1.head_id = T2.head_id", Column("age", "INT")),
])
def test_the_check_rejects_what_augmentation_must_never_do(context, gold, added):
    original = parse_schema(context)
    widened = [Table(original[-1].name, original[-1].columns + (added,))] + original[:-1]
    reason = gold_unchanged(original, widened, gold, sqlglot.parse_one(gold, read="sqlite"), k=3, seed=1)
    assert reason in (RESULT_CHANGED, "gold_fails_on_augmented")


ROWS = list({r["question"] + r["context"]: r for r in generate_rows(120, seed=4)}.values()) + \
    [{"question": "q", "context": c, "answer": g} for c, g in GOLDS]


def test_same_seed_same_rows_other_seed_differs_order_does_not_matter():
    vocabulary = build_vocabulary(ROWS, TRAIN_POOL)
    config = AugmentConfig(enabled=True, probability=0.7, seed=3)
    a, stats = augment_rows(ROWS, vocabulary, config)
    b, _ = augment_rows(ROWS, vocabulary, config)
    c, _ = augment_rows(ROWS, vocabulary, config.model_copy(update={"seed": 4}))
    reverse, _ = augment_rows(ROWS[::-1], vocabulary, config)
    assert a == b and a != c and reverse[::-1] == a
    assert stats.augmented > 0.5 * len(ROWS) and stats.skipped > 0
    assert sum(x["context"] != y["context"] for x, y in zip(a, ROWS)) == stats.augmented


def test_copies_of_a_row_get_different_schemas():
    vocabulary = build_vocabulary(ROWS, TRAIN_POOL)
    rows, _ = augment_rows([ROWS[0]] * 4, vocabulary, AugmentConfig(enabled=True, probability=1.0))
    assert len({r["context"] for r in rows}) > 1


@pytest.mark.parametrize("rows", [ROWS, pool_rows(names_in(TRAIN_POOL, "a", 20) + names_in(EVAL_POOL, "a", 20))],
                         ids=["synthetic+golds", "mixed-pools"])
def test_eval_pool_is_disjoint_from_training_pool(rows):
    train, evaluation = build_vocabulary(rows, TRAIN_POOL), build_vocabulary(rows, EVAL_POOL)
    train_names = {c.name.lower() for c in train.columns} | {t.name.lower() for t in train.tables}
    eval_names = {c.name.lower() for c in evaluation.columns} | {t.name.lower() for t in evaluation.tables}
    assert train_names and eval_names and not train_names & eval_names
    trained, _ = augment_rows(rows, train, AugmentConfig(enabled=True, probability=1.0))
    viewed, _ = realistic_view(rows)
    for before, after, pool in [(r, t, TRAIN_POOL) for r, t in zip(rows, trained)] + \
                               [(r, v, EVAL_POOL) for r, v in zip(rows, viewed)]:
        old = parse_schema(before["context"])
        new = parse_schema(after["context"])
        added = [n for cols in added_columns(old, new).values() for n in cols]
        added += [t.name for t in new if t.name.lower() not in {o.name.lower() for o in old}]
        assert all(name_pool(n) == pool for n in added), (pool, added)


FULLER = AugmentConfig(enabled=True, probability=1.0, fuller_tables=True, distractor_columns=0,
                       distractor_tables=0, key_lines=False)
MORE = names_in(TRAIN_POOL, "col_", 3)


@pytest.mark.parametrize("table, merged", [
    ("singer", True), ("Singer", True),  # Spider reuses real tables, whatever the letter case
    ("table_1940144_1", True),  # a WikiSQL table id names one real table
    ("table_name_7", False),  # WikiSQL's generic names are different tables
])
def test_fuller_tables_merge_recurring_named_tables_only(table, merged):
    rows = [{"question": "q", "context": f"CREATE TABLE {table} (first VARCHAR, second VARCHAR)",
             "answer": f"SELECT first FROM {table} WHERE second = 'x'"},
            {"question": "q", "context": f"CREATE TABLE {table.lower()} ({', '.join(f'{n} INTEGER' for n in MORE)})",
             "answer": f"SELECT {MORE[0]} FROM {table.lower()}"}]
    vocabulary = build_vocabulary(rows, TRAIN_POOL)
    result = augment_row(rows[0], vocabulary, FULLER, random.Random(0))
    columns = {c.name for t in parse_schema(result.row["context"]) for c in t.columns}
    assert (columns == {"first", "second", *MORE}) is merged, result
    assert (result.status == AUGMENTED) is merged


@pytest.mark.parametrize("context, gold, primary, foreign", [
    ("CREATE TABLE head (age INTEGER, head_id INTEGER); CREATE TABLE management (head_id INTEGER, temp VARCHAR)",
     "SELECT T1.age FROM head AS T1 JOIN management AS T2 ON T1.head_id = T2.head_id",
     {"head": ("head_id",), "management": ()}, {"management": (ForeignKey(("head_id",), "head", ("head_id",)),)}),
    ("CREATE TABLE campuses (campus VARCHAR, id INTEGER); CREATE TABLE faculty (campus VARCHAR, year INTEGER)",
     "SELECT T1.campus FROM campuses AS T1 JOIN faculty AS T2 ON T1.id = T2.campus",
     {"campuses": ("id",), "faculty": ()}, {"faculty": (ForeignKey(("campus",), "campuses", ("id",)),)}),
    ("CREATE TABLE students (id INTEGER, name VARCHAR); CREATE TABLE enrolled (student_id INTEGER, course VARCHAR)",
     "SELECT name FROM students",  # no join: the <table>_id name alone makes the key
     {"students": ("id",), "enrolled": ()}, {"enrolled": (ForeignKey(("student_id",), "students", ("id",)),)}),
    ("CREATE TABLE votes (state VARCHAR); CREATE TABLE area_code_state (state VARCHAR, area_code INTEGER)",
     "SELECT T2.area_code FROM votes AS T1 JOIN area_code_state AS T2 ON T1.state = T2.state",
     {"votes": (), "area_code_state": ()}, {}),  # no key to point at: no line invented
])
def test_key_lines_and_their_parse_round_trip(context, gold, primary, foreign):
    tables = add_key_lines(parse_schema(context), sqlglot.parse_one(gold, read="sqlite"))
    assert {t.name: t.primary_key for t in tables} == primary
    assert {t.name: t.foreign_keys for t in tables if t.foreign_keys} == foreign
    rendered = render_schema(tables)
    assert parse_schema(rendered) == tables
    assert ("PRIMARY KEY" in rendered) is any(primary.values())


@pytest.mark.parametrize("context", [
    "CREATE TABLE a (x INTEGER PRIMARY KEY, y VARCHAR REFERENCES b(z))",
    'CREATE TABLE "odd name" ("a b" INTEGER, c VARCHAR(20), PRIMARY KEY ("a b", c)); CREATE TABLE b (z REAL)',
    "CREATE TABLE t (a INTEGER, b VARCHAR, FOREIGN KEY (b) REFERENCES u (c))",
])
def test_render_schema_round_trips_key_lines_and_keeps_the_dataset_style(context):
    tables = parse_schema(context)
    rendered = render_schema(tables)
    assert parse_schema(rendered) == tables
    assert "; CREATE TABLE" in rendered or rendered.count("CREATE TABLE") == 1
    assert " INT," not in rendered and " DOUBLE" not in rendered  # spelled INTEGER / REAL like the data


def test_realistic_view_is_the_fixed_eval_configuration():
    assert REALISTIC_VIEW.probability == 1.0 and not REALISTIC_VIEW.fuller_tables
    viewed, stats = realistic_view(ROWS)
    assert viewed == realistic_view(ROWS)[0]
    assert stats.augmented >= 0.9 * len(ROWS)
    subset, _ = realistic_view(ROWS[:10], ROWS)  # a row's view does not depend on which rows are viewed
    assert subset == viewed[:10]
