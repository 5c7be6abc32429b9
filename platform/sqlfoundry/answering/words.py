"""The words of questions and identifiers, as pruning and retrieval compare them: identifiers split
at underscores and camel case, lower-cased, simply stemmed, common words left out."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[A-Za-z0-9]+")
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Words every question has; matching on them would keep every table.
STOPWORDS = frozenset("""
    a an and are as at be by did do does for from had has have how i in is it its list me of on or
    show tell than that the their them there these they this to was were what when where which who
    whom whose why will with give find all each every any many much
""".split())
_SQL_WORDS = frozenset("""
    create table primary key foreign references not null integer int varchar text real number numeric
    char date datetime boolean bool float double decimal default unique constraint
""".split())


def stem(word: str) -> str:
    """A light suffix stripper (plural, -ing, -ed): enough to meet `players` with `player` and
    `founded` with `found`, without a stemmer dependency."""
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + replacement
    return word


def identifier_words(name: str) -> list[str]:
    """`home_team_goals`, `HomeTeamGoals` and `homeTeamGoals` all give [home, team, goal]."""
    return [stem(part.lower()) for token in _TOKEN.findall(name) for part in _PART.findall(token)]


def text_words(text: str) -> list[str]:
    """The stemmed content words of a question (identifiers in it are split too)."""
    return [word for word in identifier_words(text) if word not in STOPWORDS]


def schema_words(schema: str) -> list[str]:
    """The words of a schema's table and column names, read off the text (no parse: the retrieval
    index reads every example's schema)."""
    return [word for word in identifier_words(" ".join(
        token for token in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", schema) if token.lower() not in _SQL_WORDS))
        if word not in STOPWORDS]
