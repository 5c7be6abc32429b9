"""WikiSQL-style synthetic rows: one generic table (`table_name_N` or `table_<id>_<n>`), one selected
column, optionally aggregated, filtered by 1-3 AND-ed conditions, phrased the way WikiSQL asks.

The conventions follow sql-create-context (about 95 % of it is WikiSQL): string literals in double
quotes; lower-cased in `table_name_N` rows but kept as the question writes them in `table_<id>` rows
(the model has to learn both); numbers bare, or quoted now and then in `=`; a column aggregated with
MIN/MAX/AVG/SUM typed INTEGER and every other column VARCHAR; COUNT over the column, not `*`.
Unlike sql-create-context the table is written whole (5-9 columns): the question uses only some.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlfoundry.data.synth_vocab import TOPICS, Heading

# (aggregate, weight): close to WikiSQL's mix, with the rarer aggregates a little up-weighted
_AGGREGATES = (("", 56), ("COUNT", 13), ("MIN", 8), ("MAX", 8), ("AVG", 7), ("SUM", 8))
_CONDITIONS = ((1, 55), (2, 32), (3, 13))

_AGG_WORDS = {
    "COUNT": ("How many {s} have {c}?", "What is the total number of {s} when {c}?", "Name the number of {s} for {c}",
              "How many {s} are there when {c}?", "What is the count of {s} with {c}?", "How many {s} are listed for {c}?",
              "Tell me the number of {s} for {c}"),
    "MIN": ("What is the lowest {s} when {c}?", "What is the smallest {s} with {c}?", "Name the least {s} for {c}",
            "What is the minimum {s} when {c}?", "Which {s} is the lowest one that has {c}?", "What is the fewest {s} with {c}?"),
    "MAX": ("What is the highest {s} when {c}?", "What is the largest {s} with {c}?", "Name the most {s} for {c}",
            "What is the maximum {s} when {c}?", "Which {s} is the highest one that has {c}?", "What is the greatest {s} with {c}?"),
    "AVG": ("What is the average {s} when {c}?", "What is the mean {s} with {c}?", "Name the average {s} for {c}",
            "What is the average {s} that has {c}?", "On average, what is the {s} when {c}?"),
    "SUM": ("What is the total {s} when {c}?", "What is the sum of {s} with {c}?", "How many {s} in total have {c}?",
            "Name the sum of {s} for {c}", "What is the combined {s} when {c}?"),
    "": ("What is the {s} when {c}?", "What is {S}, when {c}?", "Which {s} has {c}?", "Name the {s} for {c}",
         "Tell me the {s} for {c}", "What {s} has {c}?", "What was the {s} when {c}?", "What {s} is listed for {c}?",
         "Give the {s} with {c}.", "{c}: what is the {s}?"),
}
_WHO = ("Who is the {s} when {c}?", "Who was the {s} with {c}?", "Who has {c}?")
_NO_FILTER = {"MIN": ("What is the lowest {s}?", "Name the least {s}"), "MAX": ("What is the highest {s}?", "Name the most {s}"),
              "AVG": ("What is the average {s}?",), "SUM": ("What is the total {s}?",), "COUNT": ("How many {s} are there?",)}
# one string filter named by its value alone ("What is the score for <team>?"), as WikiSQL often asks:
# the model has to tell the column from the value
_BARE = {"": ("What is the {s} for {v}?", "What {s} does {v} have?", "Name the {s} for {v}", "Tell me the {s} of {v}"),
         "COUNT": ("How many {s} does {v} have?", "What is the number of {s} for {v}?"),
         "MIN": ("What is the lowest {s} for {v}?",), "MAX": ("What is the highest {s} for {v}?",),
         "AVG": ("What is the average {s} for {v}?",), "SUM": ("What is the total {s} for {v}?",)}
_EQ = ("{h} is {v}", "{h} of {v}", "a {h} of {v}", "{v} as the {h}", "the {h} is {v}", "{h} {v}", 'the {h} is "{v}"')
_LT = ("{h} smaller than {v}", "{h} less than {v}", "a {h} under {v}", "{h} fewer than {v}", "a {h} lower than {v}",
       "{h} below {v}")
_GT = ("{h} larger than {v}", "{h} greater than {v}", "a {h} over {v}", "{h} more than {v}", "a {h} higher than {v}",
       "{h} bigger than {v}")


@dataclass(frozen=True)
class Condition:
    heading: Heading
    op: str  # = | < | >
    value: object


def _weighted(rng: random.Random, options):
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _surface(rng: random.Random, text: str) -> str:
    """How the question writes a heading or a string value: as the table has it, lower, or title case."""
    return rng.choices((text, text.lower(), text.title()), weights=(5, 3, 1))[0]


def _table_name(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return f"table_name_{rng.randint(1, 99)}"
    return f"table_{rng.randint(1000000, 29999999)}_{rng.randint(1, 20)}"


def _sql_literal(value, op: str, question_text: str, lower: bool, rng: random.Random) -> str:
    if isinstance(value, (int, float)):  # `= "12"` now and then, as WikiSQL writes it; never in < / >
        return f'"{question_text}"' if op == "=" and rng.random() < 0.25 else question_text
    return '"' + (question_text.lower() if lower else question_text) + '"'


def _join_clauses(rng: random.Random, parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    if rng.random() < 0.3:  # "when A is x, and when B is y"
        return ", and when ".join(parts)
    return (", " if len(parts) > 2 else " ").join(parts[:-1]) + (", and " if len(parts) > 2 else " and ") + parts[-1]


def wikisql_row(rng: random.Random) -> tuple[dict[str, str], str]:
    """One row and its shape name (e.g. `wikisql_max_2`: MAX over 2 conditions)."""
    topic = TOPICS[rng.choice(sorted(TOPICS))]
    agg = _weighted(rng, _AGGREGATES)
    n_cond = 0 if agg and rng.random() < 0.08 else _weighted(rng, _CONDITIONS)  # "What is the lowest X?"
    numeric = [h for h in topic if h.numeric]
    if agg in ("MIN", "MAX", "AVG", "SUM"):
        selected = rng.choice(numeric)
    else:
        selected = rng.choice(topic)
    others = [h for h in topic if h is not selected]
    filters = rng.sample(others, n_cond)
    width = min(len(topic), max(rng.randint(5, 9), n_cond + 4))  # leaves >= 3 columns no question uses
    rest = [h for h in others if h not in filters]
    columns = [selected, *filters, *rng.sample(rest, width - 1 - n_cond)]
    rng.shuffle(columns)

    table = _table_name(rng)
    lower = table.startswith("table_name_")
    conditions = []
    for heading in filters:
        op = rng.choice(("=", "=", "<", ">")) if heading.numeric else "="
        conditions.append(Condition(heading, op, heading.make(rng)))

    clauses, where = [], []
    for cond in conditions:
        shown = _surface(rng, str(cond.value)) if isinstance(cond.value, str) else str(cond.value)
        phrases = {"=": _EQ, "<": _LT, ">": _GT}[cond.op]
        clauses.append(rng.choice(phrases).format(h=_surface(rng, cond.heading.text), v=shown))
        where.append(f"{cond.heading.column} {cond.op} {_sql_literal(cond.value, cond.op, shown, lower, rng)}")

    s_text = _surface(rng, selected.text)
    if not conditions:
        question = rng.choice(_NO_FILTER[agg]).format(s=s_text)
    elif len(conditions) == 1 and isinstance(conditions[0].value, str) and rng.random() < 0.15:
        question = rng.choice(_BARE[agg]).format(s=s_text, v=shown)
    else:
        templates = _WHO if agg == "" and selected.who and rng.random() < 0.5 else _AGG_WORDS[agg]
        question = rng.choice(templates).format(s=s_text, S=selected.text, c=_join_clauses(rng, clauses))
    question = question[0].upper() + question[1:]

    target = f"{agg}({selected.column})" if agg else selected.column
    sql = f"SELECT {target} FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
    typed = ", ".join(f"{h.column} {'INTEGER' if h is selected and agg not in ('', 'COUNT') else 'VARCHAR'}"
                      for h in columns)
    shape = f"wikisql_{agg.lower() or 'select'}_{n_cond}"
    return {"question": question, "context": f"CREATE TABLE {table} ({typed})", "answer": sql}, shape
