"""The schemas accuracy is measured on: `original` (each row's own CREATE TABLE context) and
`realistic` (the same rows, the same gold, with distractor columns and tables and key lines:
sqlfoundry.data.augment.REALISTIC_VIEW, eval-pool names only, so none is a name training added).

sql-create-context contexts hold exactly the columns the gold uses, which real schemas never do: a
model can score well on `original` by using every column it is given, so `realistic` is the
headline. Every example is tagged with its origin (`wikisql` / `named`, from its original schema).
"""

from __future__ import annotations

from dataclasses import replace

from sqlfoundry.data.augment import realistic_view
from sqlfoundry.data.mix import origin_of
from sqlfoundry.evaluation.datasets import Example
from sqlfoundry.sql.schema import SchemaError, parse_schema

ORIGINAL, REALISTIC = "original", "realistic"
VIEWS = (ORIGINAL, REALISTIC)


def _origin(schema: str) -> str | None:
    try:
        return origin_of(parse_schema(schema))
    except SchemaError:
        return None


def _row(example: Example) -> dict:
    return {"question": example.question, "context": example.schema, "answer": example.gold}


def view_examples(examples: list[Example], view: str, pool: list[Example] | None = None) -> list[Example]:
    """Copies of `examples` for `view`, tagged with view and origin. The realistic view draws its
    distractors from `pool` (default: `examples`; pass the whole file so the view of a row does not
    depend on --limit) and needs schema-only rows (no real database)."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
    tagged = [replace(e, extra={**e.extra, "view": view, "origin": _origin(e.schema)}) for e in examples]
    if view == ORIGINAL:
        return tagged
    if any(e.db_path for e in examples):
        raise ValueError("the realistic view needs schema-only rows (question/context/answer); "
                         "real databases (Spider layout) are scored on their own schema: use --view original")
    rows, _ = realistic_view([_row(e) for e in examples], [_row(e) for e in (pool or examples)])
    return [replace(e, schema=row["context"], prediction=None, latency_ms=None,
                    extra={**e.extra, "schema": row["context"], "augmented": row["context"] != e.schema})
            for e, row in zip(tagged, rows)]
