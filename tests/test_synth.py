"""The synthetic generator: every template runs on sqlite against its schema (plain and as the
evaluator synthesizes databases), literals come from the question, rows are seeded, and the mix of
WikiSQL-style and Spider-style shapes is what sql-create-context asks."""

import json
import os
import random
import re
import sqlite3
import subprocess
import sys
from collections import Counter

import pytest
import sqlglot
from sqlglot import exp

from sqlfoundry.data.mix import row_origin
from sqlfoundry.data.prepare import row_problem
from sqlfoundry.data.synth import SINGLE_DOMAINS, generate_rows, generate_tagged, spider_join_row, spider_single_row
from sqlfoundry.data.synth_domains import PAIRS
from sqlfoundry.data.synth_joins import JOINED
from sqlfoundry.data.synth_spider import SINGLE
from sqlfoundry.data.synth_vocab import TOPICS, column_name
from sqlfoundry.data.synth_wikisql import wikisql_row
from sqlfoundry.evaluation.scoring import score_schema_only
from sqlfoundry.sql.schema import parse_schema
from sqlfoundry.sql.synthdb import build_databases

# shape -> (result columns (low, high), at most this many result rows; None = any)
SPIDER_SHAPES = {
    "where_eq": ((1, 1), None), "where_compare": ((1, 1), None), "where_bool": ((1, 1), None),
    "projection": ((1, 2), None), "count": ((1, 1), 1), "aggregate": ((1, 2), 1), "distinct": ((1, 1), None),
    "group_by": ((2, 2), None), "group_top": ((1, 1), 1), "having": ((1, 1), None), "order_by": ((1, 1), None),
    "nested_avg": ((1, 1), None), "set_ops": ((1, 1), None), "like": ((1, 1), None),
    "join_where": ((1, 1), None), "join_project": ((2, 2), None), "join_group": ((2, 2), None),
    "join_top": ((1, 1), 1), "join_having": ((1, 1), None), "join_order": ((1, 1), 1), "join_count": ((1, 1), 1),
    "not_in": ((1, 1), None), "in_subquery": ((1, 1), None), "join_set_ops": ((1, 1), None),
}
WIKISQL_AGGREGATES = ("select", "count", "min", "max", "avg", "sum")


def tagged_rows(shape: str, count: int = 12) -> list[dict]:
    rng = random.Random(shape)
    if shape in SINGLE:
        return [spider_single_row(rng, shape)[0] for _ in range(count)]
    if shape in JOINED:
        return [spider_join_row(rng, shape)[0] for _ in range(count)]
    rows = [row for row, name in (wikisql_row(rng) for _ in range(40 * count)) if name.split("_")[1] == shape]
    return rows[:count]


def run_on_sqlite(row: dict) -> sqlite3.Cursor:
    db = sqlite3.connect(":memory:")
    for statement in row["context"].split(";"):
        db.execute(statement)
    for table in parse_schema(row["context"]):
        values = ", ".join("1" if c.type != "VARCHAR" else "'x'" for c in table.columns)
        db.execute(f"INSERT INTO {table.name} VALUES ({values})")
    return db.execute(row["answer"])


def literals(sql: str) -> list[str]:
    tree = sqlglot.parse_one(sql, read="mysql")  # mysql reads "x" as a string, as the rows mean it
    # `LIMIT 1` is what "the highest" means, not a number the question writes
    return [lit.this.strip("%") for lit in tree.find_all(exp.Literal)
            if not (isinstance(lit.parent, exp.Limit) and lit.this == "1")]


def test_every_template_is_covered_by_the_shape_table():
    assert set(SINGLE) | set(JOINED) == set(SPIDER_SHAPES)


@pytest.mark.parametrize("shape", sorted(SPIDER_SHAPES) + list(WIKISQL_AGGREGATES))
def test_each_template_runs_on_its_schema_with_rows_of_the_right_shape(shape):
    rows = tagged_rows(shape)
    assert len(rows) == 12
    (low, high), max_rows = SPIDER_SHAPES.get(shape, ((1, 1), None if shape == "select" else 1))
    for row in rows:
        assert row_problem(row) is None, row
        cursor = run_on_sqlite(row)
        result = cursor.fetchall()
        assert low <= len(cursor.description) <= high, row
        assert max_rows is None or len(result) <= max_rows, row
        # the evaluator's view: databases synthesized from the schema and the gold's literals
        score = score_schema_only(row["context"], row["answer"], row["answer"], k=3, seed=1)
        assert score.category in ("scored", "gold_constant") and score.ex, (row, score)
        for conn in build_databases(parse_schema(row["context"]), [row["answer"]], k=1, seed=2):
            assert low <= len(conn.execute(row["answer"]).description) <= high
            conn.close()


def test_most_golds_tell_databases_apart_so_they_are_scored():
    constant = Counter(score_schema_only(r["context"], r["answer"], r["answer"], k=3, seed=0).category
                       for r in generate_rows(150, seed=9))
    assert constant["gold_error"] == 0 and constant["scored"] > 0.75 * 150, constant


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_literals_in_the_sql_come_from_the_question(seed):
    for row in generate_rows(400, seed=seed):
        question = row["question"]
        wikisql_lower = row["context"].startswith("CREATE TABLE table_name_")
        for value in literals(row["answer"]):
            # table_name_N rows lower-case their strings (as sql-create-context does); others copy the question
            assert value.lower() in question.lower() if wikisql_lower else value in question, (value, row)
        assert not any(word in question for word in ("SELECT", "FROM ", "WHERE", "T1.", "_id"))
        names = {c.name.lower() for t in parse_schema(row["context"]) for c in t.columns}
        assert not names & {v.lower() for v in literals(row["answer"])}, row  # sqlite would read "x" as a column


def test_wikisql_rows_follow_sql_create_context_conventions():
    seen = Counter()
    for row, shape in generate_tagged(800, seed=4):
        if not shape.startswith("wikisql"):
            assert row_origin(row) == "named" and ("T1." in row["answer"]) == (" AS T1 " in row["answer"])
            continue
        assert row_origin(row) == "wikisql"
        [table] = parse_schema(row["context"])
        assert re.fullmatch(r"table_name_\d+|table_\d+_\d+", table.name)
        assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", c.name) for c in table.columns), table
        assert len(set(table.column_names)) == len(table.columns)
        agg = re.match(r"SELECT (MIN|MAX|AVG|SUM)\((\w+)\)", row["answer"])
        integer = {c.name for c in table.columns if c.type.startswith("INT")}
        assert integer == ({agg.group(2)} if agg else set()), row  # only an aggregated column is INTEGER
        assert "COUNT(*)" not in row["answer"] and "'" not in row["answer"]
        conditions = row["answer"].count(" AND ") + (" WHERE " in row["answer"])
        assert shape.endswith(f"_{conditions}")
        seen[shape.split("_")[1]] += 1
        seen[conditions] += 1
        seen["quoted_number"] += bool(re.search(r'= "\d+"', row["answer"]))
        seen["compare"] += bool(re.search(r" [<>] \d", row["answer"]))
        seen["odd_name"] += bool(re.search(r"\b(\w+__\w*|_\w+|\w+_)\b (VARCHAR|INTEGER)", row["context"]))
    assert all(seen[k] > 20 for k in (*WIKISQL_AGGREGATES, 1, 2, 3, "quoted_number", "compare", "odd_name")), seen
    assert 0 < seen[0] < seen[3]


@pytest.mark.parametrize("heading, column", [
    ("Pick #", "pick__number"), ("No.", "no_"), ("% of votes", "_percentage_of_votes"),
    ("Time/Retired", "time_retired"), ("U.S. viewers (millions)", "u_s__viewers__millions_"),
    ("Opponent in the final", "opponent_in_the_final"),
])
def test_headings_become_columns_the_way_sql_create_context_names_them(heading, column):
    assert column_name(heading) == column


def test_every_topic_can_fill_a_wide_table_and_be_aggregated():
    for topic, headings in TOPICS.items():
        assert len(headings) >= 8 and any(h.numeric for h in headings), topic
        assert len({h.column for h in headings}) == len(headings), topic
        assert not any(h.column[0].isdigit() for h in headings), topic  # sqlite cannot parse a bare 2011_x


def test_the_mix_of_shapes():
    tagged = generate_tagged(3000, seed=11)
    shapes = Counter(shape for _, shape in tagged)
    wikisql = sum(c for s, c in shapes.items() if s.startswith("wikisql"))
    joined = sum(shapes[s] for s in JOINED)
    assert 0.77 < wikisql / 3000 < 0.83 and 0.06 < joined / 3000 < 0.10, shapes
    assert all(shapes[s] >= 10 for s in SPIDER_SHAPES), shapes
    kinds = Counter()
    features = ("JOIN", " AS T1 ", "GROUP BY", "HAVING", "ORDER BY", "LIMIT", "NOT id IN (", "WHERE id IN (",
                "INTERSECT", "EXCEPT", "UNION", "DISTINCT", "LIKE", "(SELECT AVG(", "COUNT(*)", "AVG(", "SUM(",
                "MIN(", "MAX(", " AND ", " OR ", " < ", " > ", " = ")
    for row, _ in tagged:
        kinds.update(f for f in features if f in row["answer"])
    assert all(kinds[f] >= 5 for f in features), kinds
    with pytest.raises(ValueError, match="join_fraction"):
        generate_rows(5, wikisql_fraction=0.9, join_fraction=0.2)


def test_spider_templates_run_on_every_domain_and_pair():
    rng = random.Random(0)
    for domain in SINGLE_DOMAINS:
        for template in SINGLE.values():
            question, sql = template(rng, domain)
            run_on_sqlite({"context": f"CREATE TABLE {domain.table} (" + ", ".join(
                f"{c.name} {c.type}" for c in domain.columns) + ")", "answer": sql}).fetchall()
    for pair in PAIRS:
        for shape in JOINED:
            run_on_sqlite(spider_join_row(random.Random(pair.key + shape), shape)[0]).fetchall()


def test_every_named_table_has_columns_no_question_asks_about():
    for domain in SINGLE_DOMAINS:
        values = {str(v).lower() for c in domain.askable for v in c.values}
        assert len(domain.columns) - len(domain.askable) >= 3, domain.table
        assert len(domain.text) >= 1 and len(domain.numbers) >= 1, domain.table
        assert not values & {c.name for c in domain.columns}, domain.table  # "x" would read as a column


def test_synthetic_sql_executes_on_sqlite_for_every_row():
    for row in generate_rows(600, seed=11):
        assert row_problem(row) is None
        run_on_sqlite(row).fetchall()  # raises on any invalid SQL


def test_synthetic_rows_are_deterministic_even_across_hash_seeds():
    assert generate_rows(50, seed=5) == generate_rows(50, seed=5) != generate_rows(50, seed=6)
    code = "import json; from sqlfoundry.data.synth import generate_rows; print(json.dumps(generate_rows(300, seed=3)))"
    outputs = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(h)},
                              check=True, capture_output=True, text=True).stdout for h in (1, 2)}
    assert len(outputs) == 1 and json.loads(outputs.pop()) == generate_rows(300, seed=3)


def test_synthetic_tables_are_wider_than_the_columns_questions_use():
    narrower = 0
    for row in generate_rows(300, seed=2):
        tables = parse_schema(row["context"])
        in_schema = {c.name for t in tables for c in t.columns}
        used = {c.name for c in sqlglot.parse_one(row["answer"], read="mysql").find_all(exp.Column)}
        assert used <= in_schema and all(len(t.columns) >= 5 for t in tables), row
        narrower += len(used) < len(in_schema) - 2
    assert narrower == 300  # every question leaves at least 3 columns of its schema unused
