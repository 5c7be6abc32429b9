"""Synthetic text-to-SQL rows: random schemas, templated questions in plain English, SQL that runs.

Rows have the same three fields as sql-create-context (question, context, answer) and its two
styles: WikiSQL-style rows over one generic `table_name_N` table (`synth_wikisql`, most rows, as in
sql-create-context) and Spider-style rows over named tables, single or joined (`synth_spider`,
`synth_joins`). Every template yields SQLite that executes against its schema (tests run each one).
The generator is the offline default for the quickstart and the starting point for "adapt to your
own schema" data. Tables are always written whole, as a real database has them (an id, bookkeeping
columns no question asks about), while each question uses only some columns: the model learns to
choose.
"""

from __future__ import annotations

import random

from sqlfoundry.data.synth_domains import DOMAINS, PAIRS
from sqlfoundry.data.synth_joins import JOINED
from sqlfoundry.data.synth_spider import SINGLE, ddl
from sqlfoundry.data.synth_wikisql import wikisql_row

# single-table Spider templates run on the plain tables and on both sides of every joined pair
SINGLE_DOMAINS = DOMAINS + tuple(d for pair in PAIRS for d in (pair.parent, pair.child))


def spider_single_row(rng: random.Random, shape: str | None = None) -> tuple[dict[str, str], str]:
    shape = shape or rng.choice(sorted(SINGLE))
    domain = rng.choice(SINGLE_DOMAINS)
    question, sql = SINGLE[shape](rng, domain)
    return {"question": question, "context": ddl(domain), "answer": sql}, shape


def spider_join_row(rng: random.Random, shape: str | None = None) -> tuple[dict[str, str], str]:
    shape = shape or rng.choice(sorted(JOINED))
    pair = rng.choice(PAIRS)
    question, sql = JOINED[shape](rng, pair)
    tables = [ddl(pair.parent), ddl(pair.child)]
    rng.shuffle(tables)  # the context lists the tables in either order
    return {"question": question, "context": "; ".join(tables), "answer": sql}, shape


def generate_tagged(n: int, seed: int = 0, wikisql_fraction: float = 0.8,
                    join_fraction: float = 0.08) -> list[tuple[dict[str, str], str]]:
    """`n` (row, shape name) pairs: `wikisql_fraction` WikiSQL-style, `join_fraction` two-table
    Spider-style, the rest single-table Spider-style."""
    if not (0 <= wikisql_fraction <= 1 and 0 <= join_fraction and wikisql_fraction + join_fraction <= 1 + 1e-9):
        raise ValueError("generate_rows: need 0 <= wikisql_fraction and 0 <= join_fraction <= 1 - wikisql_fraction")
    rng = random.Random(seed)
    tagged = []
    for _ in range(n):
        roll = rng.random()
        if roll < wikisql_fraction:
            tagged.append(wikisql_row(rng))
        elif roll < wikisql_fraction + join_fraction:
            tagged.append(spider_join_row(rng))
        else:
            tagged.append(spider_single_row(rng))
    return tagged


def generate_rows(n: int, seed: int = 0, wikisql_fraction: float = 0.8,
                  join_fraction: float = 0.08) -> list[dict[str, str]]:
    """`n` rows; the same (n, seed) always gives the same rows."""
    return [row for row, _ in generate_tagged(n, seed, wikisql_fraction, join_fraction)]
