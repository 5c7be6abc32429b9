"""Schema pruning: a wide schema cut down to the tables and columns the question is about.

Small models use every column they are shown, so distractor columns and tables cost accuracy; the
pruned schema keeps what the question mentions and what is needed to join it (CodeS's schema filter,
with word overlap in place of a trained classifier):
- a column is relevant when its name's words (identifier split, stemmed) meet the question's words,
  or its whole name appears in the question as a word (so `age` is not found in "average");
- a table is kept when the question names it or one of its columns is relevant;
- a kept table keeps its relevant columns, its primary and foreign keys, the columns other kept
  tables reference, and the columns it shares by name with another kept table (join columns);
- a kept table with no relevant column keeps every column (the question names it, nothing else).
Nothing is pruned when no table matches at all: an empty schema answers nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlfoundry.answering.words import identifier_words, text_words
from sqlfoundry.sql.schema import Table


@dataclass(frozen=True)
class Pruned:
    tables: list[Table]
    dropped_tables: tuple[str, ...] = ()
    dropped_columns: tuple[str, ...] = ()  # "table.column", of kept tables

    @property
    def changed(self) -> bool:
        return bool(self.dropped_tables or self.dropped_columns)


def _in_question(phrase: str, question: str) -> bool:
    return re.search(rf"(?<![a-z0-9_]){re.escape(phrase)}(?![a-z0-9_])", question) is not None


def _named(name: str, question_words: set[str], question: str) -> bool:
    words = set(identifier_words(name))
    return _in_question(name.lower(), question) or _in_question(name.lower().replace("_", " "), question) or \
        bool(words) and words <= question_words


def _relevant(column: str, question_words: set[str], question: str) -> bool:
    return bool(set(identifier_words(column)) & question_words) or _named(column, question_words, question)


def _key_columns(table: Table, kept: list[Table]) -> set[str]:
    keys = {c.lower() for c in table.primary_key}
    keys |= {c.lower() for fk in table.foreign_keys for c in fk.columns if fk.table.lower() in
             {t.name.lower() for t in kept}}
    for other in kept:
        if other is table:
            continue
        keys |= {c.lower() for fk in other.foreign_keys if fk.table.lower() == table.name.lower()
                 for c in fk.references}
        keys |= {c.lower() for c in table.column_names} & {c.lower() for c in other.column_names}
    return keys


def prune_schema(tables: list[Table], question: str, min_columns: int) -> Pruned:
    """`tables` cut to the question when they hold more than `min_columns` columns (else unchanged)."""
    if sum(len(t.columns) for t in tables) <= min_columns:
        return Pruned(list(tables))
    lowered = " ".join(question.lower().split())
    words = set(text_words(question))
    relevant = {t.name: {c.name.lower() for c in t.columns if _relevant(c.name, words, lowered)} for t in tables}
    kept = [t for t in tables if relevant[t.name] or _named(t.name, words, lowered)]
    if not kept:
        return Pruned(list(tables))
    result, dropped_columns = [], []
    for table in kept:
        keep = relevant[table.name] | _key_columns(table, kept) if relevant[table.name] else \
            {c.name.lower() for c in table.columns}
        columns = tuple(c for c in table.columns if c.name.lower() in keep)
        dropped_columns += [f"{table.name}.{c.name}" for c in table.columns if c.name.lower() not in keep]
        kept_names = {t.name.lower() for t in kept}
        foreign_keys = tuple(fk for fk in table.foreign_keys if fk.table.lower() in kept_names
                             and all(c.lower() in keep for c in fk.columns))
        primary_key = table.primary_key if all(c.lower() in keep for c in table.primary_key) else ()
        result.append(Table(table.name, columns, primary_key, foreign_keys))
    dropped_tables = tuple(t.name for t in tables if t not in kept)
    return Pruned(result, dropped_tables, tuple(dropped_columns))
