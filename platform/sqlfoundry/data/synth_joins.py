"""Spider-style synthetic rows over two tables joined on a key: JOIN with the aliases T1 / T2 (either
table may be T1, as in Spider), grouped counts, HAVING, ORDER BY over the joined rows, nested
IN / NOT IN, and INTERSECT / EXCEPT of joined selections.

Each template takes a seeded `random.Random` and a `Pair` and returns (question, sql); `JOINED`
maps shape names to templates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from sqlfoundry.data.synth_domains import Col, Pair


def _lit(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class _Join:
    source: str  # "FROM ... AS T1 JOIN ... AS T2 ON ..."
    p: str  # the parent's alias
    c: str  # the child's alias


def _join(rng: random.Random, pair: Pair) -> _Join:
    if rng.random() < 0.5:
        return _Join(f"FROM {pair.parent.table} AS T1 JOIN {pair.child.table} AS T2 ON T1.id = T2.{pair.key}", "T1", "T2")
    return _Join(f"FROM {pair.child.table} AS T1 JOIN {pair.parent.table} AS T2 ON T1.{pair.key} = T2.id", "T2", "T1")


def _parts(rng: random.Random, pair: Pair) -> tuple[Col, Col, Col, Col]:
    """The parent's label column, a parent text filter column, a child text column, a child number."""
    label = next(c for c in pair.parent.columns if c.name == pair.label)
    p_text = rng.choice([c for c in pair.parent.text if c is not label] or [label])
    return label, p_text, rng.choice(pair.child.text), rng.choice(pair.child.numbers)


def join_where(rng, pair):
    label, p_text, c_text, c_num = _parts(rng, pair)
    j, child, role = _join(rng, pair), pair.child.entity, pair.role
    if rng.random() < 0.5:
        v = rng.choice(p_text.values)
        q = rng.choice((f"Which {child} have a {role} whose {p_text.phrase} is {v}? Give their {c_text.phrase}.",
                        f"Show the {c_text.phrase} of the {child} of the {role} with {p_text.phrase} {v}."))
        return q, f"SELECT {j.c}.{c_text.name} {j.source} WHERE {j.p}.{p_text.name} = {_lit(v)}"
    v = rng.choice(c_num.values)
    distinct = "DISTINCT " if rng.random() < 0.5 else ""
    q = (f"Find the {'different ' if distinct else ''}{label.phrase}s of {pair.parent.entity} that have {child} "
         f"with {c_num.phrase} above {v}.")
    return q, f"SELECT {distinct}{j.p}.{label.name} {j.source} WHERE {j.c}.{c_num.name} > {v}"


def join_project(rng, pair):
    label, _, c_text, _ = _parts(rng, pair)
    j = _join(rng, pair)
    q = rng.choice((f"For each of the {pair.child.entity}, what is the {c_text.phrase} and the {pair.role}'s {label.phrase}?",
                    f"Show the {c_text.phrase} of every one of the {pair.child.entity} with the {label.phrase} of its {pair.role}."))
    return q, f"SELECT {j.c}.{c_text.name}, {j.p}.{label.name} {j.source}"


def join_group(rng, pair):
    label, _, _, c_num = _parts(rng, pair)
    j, child, role = _join(rng, pair), pair.child.entity, pair.role
    key = rng.choice((f"{j.p}.id", f"{j.p}.{label.name}"))
    roll = rng.random()
    if roll < 0.4:
        return (rng.choice((f"How many {child} does each {role} have? List the {role} {label.phrase} and the count.",
                            f"Show the {label.phrase} of each {role} and the number of {child} it has.")),
                f"SELECT {j.p}.{label.name}, COUNT(*) {j.source} GROUP BY {key}")
    if roll < 0.7:
        return (f"What is the total {c_num.phrase} of {child} for each {role} {label.phrase}?",
                f"SELECT {j.p}.{label.name}, SUM({j.c}.{c_num.name}) {j.source} GROUP BY {key}")
    return (f"What is the average {c_num.phrase} of the {child} of each {role}? Show the {role} {label.phrase} too.",
            f"SELECT {j.p}.{label.name}, AVG({j.c}.{c_num.name}) {j.source} GROUP BY {key}")


def join_top(rng, pair):
    label, _, _, _ = _parts(rng, pair)
    j, child, role = _join(rng, pair), pair.child.entity, pair.role
    most, direction = rng.choice((("most", "DESC"), ("fewest", "ASC")))
    q = rng.choice((f"What is the {label.phrase} of the {role} with the {most} {child}?",
                    f"Which {role} has the {most} {child}? Give its {label.phrase}."))
    return q, f"SELECT {j.p}.{label.name} {j.source} GROUP BY {j.p}.id ORDER BY COUNT(*) {direction} LIMIT 1"


def join_having(rng, pair):
    label, _, _, _ = _parts(rng, pair)
    j, child = _join(rng, pair), pair.child.entity
    k = rng.randint(2, 4)
    op, words = rng.choice(((">=", "at least"), (">", "more than")))
    q = rng.choice((f"Which {pair.parent.entity} have {words} {k} {child}? List their {label.phrase}.",
                    f"Find the {label.phrase} of every {pair.role} with {words} {k} {child}."))
    return q, f"SELECT {j.p}.{label.name} {j.source} GROUP BY {j.p}.id HAVING COUNT(*) {op} {k}"


def join_order(rng, pair):
    label, _, c_text, c_num = _parts(rng, pair)
    j, child, role = _join(rng, pair), pair.child.entity, pair.role
    direction, word = rng.choice((("DESC", "highest"), ("ASC", "lowest")))
    q = f"What is the {role} {label.phrase} of the one of the {child} with the {word} {c_num.phrase}?"
    return q, f"SELECT {j.p}.{label.name} {j.source} ORDER BY {j.c}.{c_num.name} {direction} LIMIT 1"


def join_count(rng, pair):
    label, p_text, _, _ = _parts(rng, pair)
    j = _join(rng, pair)
    v = rng.choice(p_text.values)
    q = f"How many {pair.child.entity} have a {pair.role} whose {p_text.phrase} is {v}?"
    return q, f"SELECT COUNT(*) {j.source} WHERE {j.p}.{p_text.name} = {_lit(v)}"


def not_in(rng, pair):
    label, _, c_text, _ = _parts(rng, pair)
    parent, child = pair.parent, pair.child
    if rng.random() < 0.3:
        return (f"How many {parent.entity} have no {child.entity}?",
                f"SELECT COUNT(*) FROM {parent.table} WHERE NOT id IN (SELECT {pair.key} FROM {child.table})")
    q = rng.choice((f"List the {label.phrase} of {parent.entity} that have no {child.entity}.",
                    f"Which {parent.entity} do not have any {child.entity}? Give their {label.phrase}."))
    return q, f"SELECT {label.name} FROM {parent.table} WHERE NOT id IN (SELECT {pair.key} FROM {child.table})"


def in_subquery(rng, pair):
    label, _, c_text, _ = _parts(rng, pair)
    v = rng.choice(c_text.values)
    q = f"What are the {label.phrase}s of {pair.parent.entity} that have {pair.child.entity} with {c_text.phrase} {v}?"
    return q, (f"SELECT {label.name} FROM {pair.parent.table} WHERE id IN "
               f"(SELECT {pair.key} FROM {pair.child.table} WHERE {c_text.name} = {_lit(v)})")


def join_set_ops(rng, pair):
    label, _, c_text, _ = _parts(rng, pair)
    j, parent, child = _join(rng, pair), pair.parent, pair.child
    v1, v2 = rng.sample(c_text.values, 2)
    if rng.random() < 0.5:
        q = (f"Which {parent.entity} have both {child.entity} with {c_text.phrase} {v1} and {child.entity} "
             f"with {c_text.phrase} {v2}? Give their {label.phrase}.")
        return q, (
            f"SELECT {j.p}.{label.name} {j.source} WHERE {j.c}.{c_text.name} = {_lit(v1)} INTERSECT "
            f"SELECT {j.p}.{label.name} {j.source} WHERE {j.c}.{c_text.name} = {_lit(v2)}")
    q = f"List the {label.phrase} of {parent.entity} that have no {child.entity} with {c_text.phrase} {v1}."
    return q, (f"SELECT {label.name} FROM {parent.table} EXCEPT "
               f"SELECT {j.p}.{label.name} {j.source} WHERE {j.c}.{c_text.name} = {_lit(v1)}")


JOINED: dict[str, Callable] = {
    "join_where": join_where, "join_project": join_project, "join_group": join_group, "join_top": join_top,
    "join_having": join_having, "join_order": join_order, "join_count": join_count, "not_in": not_in,
    "in_subquery": in_subquery, "join_set_ops": join_set_ops,
}
