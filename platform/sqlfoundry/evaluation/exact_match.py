"""Exact match of SQL strings after normalizing case, whitespace, quote style and trailing semicolons."""

from __future__ import annotations


def normalize_sql(sql: str) -> str:
    text = " ".join(sql.strip().split()).rstrip(";").strip()
    return text.replace('"', "'").lower()


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_sql(prediction) == normalize_sql(gold)
