"""Exact match of SQL: normalized strings, and a sqlglot-canonical variant reported separately."""

from __future__ import annotations

import sqlglot
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from sqlfoundry.sql.validate import quoted_strings_to_literals


def normalize_sql(sql: str) -> str:
    """Case, whitespace, quote style and trailing semicolons do not count."""
    text = " ".join(sql.strip().split()).rstrip(";").strip()
    return text.replace('"', "'").lower()


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_sql(prediction) == normalize_sql(gold)


def canonical_sql(sql: str, known_columns: set[str] | None = None) -> str | None:
    """sqlglot's rendering of the parsed query with identifiers normalized; None if it does not parse.

    With `known_columns`, a "double-quoted" name that is no column becomes a string literal, as sqlite
    reads it (WikiSQL gold writes strings that way).
    """
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (SqlglotError, ValueError):
        return None
    if tree is None:
        return None
    if known_columns is not None:
        tree = quoted_strings_to_literals(tree, known_columns)
    tree = normalize_identifiers(tree, dialect="sqlite")
    return tree.sql(dialect="sqlite", normalize_functions="upper")


def canonical_match(prediction: str, gold: str, known_columns: set[str] | None = None) -> bool:
    gold_canonical = canonical_sql(gold, known_columns)
    return gold_canonical is not None and canonical_sql(prediction, known_columns) == gold_canonical
