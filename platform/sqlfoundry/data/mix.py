"""Where a row comes from (its origin), and origin-weighted sampling of training rows (`data.mix`).

sql-create-context merges WikiSQL (one generic table per row: `table_name_N`, or a WikiSQL table id
`table_<digits>_<digits>`) and Spider (real table names, often several per row). The two behave
differently, so accuracy is reported per origin and a recipe may up-weight the rarer named rows.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from sqlfoundry.sql.schema import SchemaError, Table, parse_schema

WIKISQL, NAMED = "wikisql", "named"
_WIKISQL_TABLE = re.compile(r"table_(?:name_\d+|\d+(?:_\d+)*)", re.IGNORECASE)


def origin_of(tables: list[Table]) -> str:
    return WIKISQL if tables and all(_WIKISQL_TABLE.fullmatch(t.name) for t in tables) else NAMED


def row_origin(row: dict) -> str:
    try:
        return origin_of(parse_schema(row["context"]))
    except SchemaError:
        return NAMED


def mix_rows(rows: list[dict], weights: dict[str, float], seed: int) -> tuple[list[dict], dict[str, dict]]:
    """Each row of origin g kept floor(w_g) times plus once more with probability frac(w_g) (w_g = 1
    for origins without a weight), then shuffled; returns the rows and per-origin counts."""
    rng = random.Random(f"mix:{seed}")
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    mixed: list[dict] = []
    for row in rows:
        origin = row_origin(row)
        weight = weights.get(origin, 1.0)
        copies = int(weight) + (rng.random() < weight - int(weight))
        before[origin] += 1
        after[origin] += copies
        mixed += [row] * copies
    rng.shuffle(mixed)
    counts = {origin: {"weight": weights.get(origin, 1.0), "rows": before[origin], "sampled": after[origin]}
              for origin in sorted(before)}
    return mixed, counts
