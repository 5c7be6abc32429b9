"""One SQL statement out of a model's reply: the first statement that parses.

Replies wrap SQL in code fences, lead with prose ("To select all heads older than 56:"), trail
explanations and semicolons. Each word that can start a statement is a candidate start, read or
write alike (a write must reach the validator, not be skipped over to a later read); the candidate's
statement runs to its end as sqlglot's tokenizer sees it (the first `;` or blank line outside quotes
and comments), and the first candidate whose statement parses wins.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from sqlfoundry.sql.validate import parse_single

_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)(?:```|$)", re.IGNORECASE | re.DOTALL)
# Candidate starts are found as words, not by tokenizing the whole reply: an apostrophe in prose
# ("Here's the query: SELECT ...") opens a string the tokenizer never sees closed, which would hide
# every statement after it.
_STATEMENT_START = re.compile(
    r"\b(SELECT|WITH|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|PRAGMA|ATTACH|DETACH|REPLACE|VACUUM)\b",
    re.IGNORECASE,
)
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")


def _statement_from(text: str) -> str:
    """`text` up to the end of the statement it starts with: the first `;` or blank line between
    tokens. A quote that never closes ends the tokens early; with no end before it, the statement
    runs to the end of the text (and fails to parse, as it should)."""
    tokenizer = SQLite.tokenizer_class()
    try:
        tokens = tokenizer.tokenize(text)
    except TokenError:
        tokens = tokenizer.tokens  # the tokens before the unclosed quote
    for previous, token in zip([None, *tokens], tokens):
        if token.token_type == TokenType.SEMICOLON:
            return text[:token.start]
        if previous is not None and _BLANK_LINE.search(text, previous.end + 1, token.start):
            return text[:previous.end + 1]
    return text


def _compact(statement: str) -> str:
    """One line: each run of whitespace or comments between tokens becomes one space. Splitting the
    raw text instead would squash spaces inside string literals and pull the line after a `--`
    comment into the comment."""
    tokens = SQLite.tokenizer_class().tokenize(statement)
    pieces = []
    for previous, token in zip([None, *tokens], tokens):
        if previous is not None and token.start > previous.end + 1:
            pieces.append(" ")
        pieces.append(statement[token.start:token.end + 1])
    return "".join(pieces)


def _parses(statement: str) -> bool:
    parsed = parse_single(statement)
    # A Command is sqlglot giving up ("replace the column" parses as one): not a parse.
    return parsed.ok and not isinstance(parsed.tree, exp.Command)


def extract_sql(text: str) -> str:
    """One SQL statement from raw model output, or "" when there is none.

    The first candidate statement that parses; when none does, the first candidate as written, so
    the validator reports what is wrong with it (a parse error, an unsupported write).
    """
    fenced = _FENCE.search(text)
    if fenced and _STATEMENT_START.search(fenced.group(1)):
        text = fenced.group(1)
    first = None
    for start in _STATEMENT_START.finditer(text):
        statement = _statement_from(text[start.start():])
        if _parses(statement):
            return _compact(statement)
        first = first if first is not None else statement
    # Not compacted by tokens: a statement that does not parse may not tokenize either.
    return " ".join(first.split()) if first is not None else ""
