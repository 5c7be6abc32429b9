"""Spider-style synthetic rows over one named table: filters, aggregates, DISTINCT, GROUP BY /
HAVING, ORDER BY / LIMIT, a nested AVG subquery, INTERSECT / EXCEPT / UNION and LIKE, with string
literals in double quotes as the question writes them (as sql-create-context's Spider rows do).
Two-table joins are in `synth_joins`.

Each template takes a seeded `random.Random` and a `Domain` and returns (question, sql); `SINGLE`
maps shape names to templates, so tests can run every one.
"""

from __future__ import annotations

import random
from typing import Callable

from sqlfoundry.data.synth_domains import Col, Domain


def _lit(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def ddl(domain: Domain) -> str:
    return f"CREATE TABLE {domain.table} (" + ", ".join(f"{c.name} {c.type}" for c in domain.columns) + ")"


def _cols(rng: random.Random, d: Domain) -> tuple[Col, Col, Col]:
    """A text column, a number column, and another askable column that is neither."""
    txt, num = rng.choice(d.text), rng.choice(d.numbers)
    other = rng.choice([c for c in d.askable if c not in (txt, num) and not c.name.endswith("id")] or [txt])
    return txt, num, other


_GT = ((">", "more than"), (">", "greater than"), (">", "above"), (">=", "at least"))
_LT = (("<", "less than"), ("<", "below"), ("<", "under"), ("<=", "at most"))


def _compare(rng: random.Random, num: Col) -> tuple[str, str, object]:
    op, words = rng.choice(_GT + _LT)
    return op, words, rng.choice(num.values)


def where_eq(rng, d):
    t, _, o = _cols(rng, d)
    v = rng.choice(t.values)
    q = rng.choice((f"What is the {o.phrase} of the {d.entity} whose {t.phrase} is {v}?",
                    f'Find the {o.phrase} of {d.entity} with {t.phrase} "{v}".',
                    f"Show the {o.phrase} for all {d.entity} where the {t.phrase} is {v}.",
                    f"Which {d.entity} have the {t.phrase} {v}? Give their {o.phrase}."))
    return q, f"SELECT {o.name} FROM {d.table} WHERE {t.name} = {_lit(v)}"


def where_compare(rng, d):
    _, n, o = _cols(rng, d)
    op, words, v = _compare(rng, n)
    q = rng.choice((f"Which {o.phrase} belong to {d.entity} with a {n.phrase} {words} {v}?",
                    f"List the {o.phrase} of {d.entity} whose {n.phrase} is {words} {v}.",
                    f"Show the {o.phrase} of all {d.entity} that have {n.phrase} {words} {v}."))
    return q, f"SELECT {o.name} FROM {d.table} WHERE {n.name} {op} {v}"


def where_bool(rng, d):
    t, n, o = _cols(rng, d)
    if rng.random() < 0.3:
        v1, v2 = rng.sample(t.values, 2)
        return (f"Show the {o.phrase} of {d.entity} whose {t.phrase} is either {v1} or {v2}.",
                f"SELECT {o.name} FROM {d.table} WHERE {t.name} = {_lit(v1)} OR {t.name} = {_lit(v2)}")
    op, words, nv = _compare(rng, n)
    v = rng.choice(t.values)
    q = rng.choice((f"Show the {o.phrase} of {d.entity} whose {t.phrase} is {v} and whose {n.phrase} is {words} {nv}.",
                    f"What are the {o.phrase} of the {d.entity} with {t.phrase} {v} and {n.phrase} {words} {nv}?"))
    return q, f"SELECT {o.name} FROM {d.table} WHERE {t.name} = {_lit(v)} AND {n.name} {op} {nv}"


def projection(rng, d):
    a, b = rng.sample(d.askable, 2)
    if rng.random() < 0.3:
        return (rng.choice((f"List the {a.phrase} of all {d.entity}.", f"What is the {a.phrase} of each of the {d.entity}?")),
                f"SELECT {a.name} FROM {d.table}")
    q = rng.choice((f"What are the {a.phrase} and {b.phrase} of every entry in {d.table}?",
                    f"List the {a.phrase} and {b.phrase} of all {d.entity}.",
                    f"Show {a.phrase} and {b.phrase} for each of the {d.entity}."))
    return q, f"SELECT {a.name}, {b.name} FROM {d.table}"


def count(rng, d):
    t, n, _ = _cols(rng, d)
    if rng.random() < 0.4:
        q = rng.choice((f"How many {d.entity} are there?", f"Count the number of {d.entity}.",
                        f"What is the total number of {d.entity}?"))
        return q, f"SELECT COUNT(*) FROM {d.table}"
    if rng.random() < 0.5:
        v = rng.choice(t.values)
        return (rng.choice((f"How many {d.entity} have the {t.phrase} {v}?", f"Count the {d.entity} whose {t.phrase} is {v}.")),
                f"SELECT COUNT(*) FROM {d.table} WHERE {t.name} = {_lit(v)}")
    op, words, v = _compare(rng, n)
    return f"How many {d.entity} have a {n.phrase} {words} {v}?", f"SELECT COUNT(*) FROM {d.table} WHERE {n.name} {op} {v}"


_AGG = (("AVG", "average"), ("MAX", "maximum"), ("MIN", "minimum"), ("SUM", "total"), ("MAX", "highest"), ("MIN", "lowest"))


def aggregate(rng, d):
    t, n, _ = _cols(rng, d)
    (f1, w1), (f2, w2) = rng.sample(_AGG, 2)
    if rng.random() < 0.35 and f1 != f2:
        return (f"What are the {w1} and {w2} {n.phrase} of all {d.entity}?",
                f"SELECT {f1}({n.name}), {f2}({n.name}) FROM {d.table}")
    if rng.random() < 0.5:
        v = rng.choice(t.values)
        return (f"What is the {w1} {n.phrase} of {d.entity} whose {t.phrase} is {v}?",
                f"SELECT {f1}({n.name}) FROM {d.table} WHERE {t.name} = {_lit(v)}")
    return f"What is the {w1} {n.phrase} of all {d.entity}?", f"SELECT {f1}({n.name}) FROM {d.table}"


def distinct(rng, d):
    t = rng.choice(d.text)
    if rng.random() < 0.5:
        return (rng.choice((f"How many different {t.phrase} values do the {d.entity} have?",
                            f"Count the number of distinct {t.phrase} among {d.entity}.")),
                f"SELECT COUNT(DISTINCT {t.name}) FROM {d.table}")
    return (rng.choice((f"What are the distinct {t.phrase} values of the {d.entity}?",
                        f"List the different {t.phrase} values that {d.entity} have.")),
            f"SELECT DISTINCT {t.name} FROM {d.table}")


def group_by(rng, d):
    t, n, _ = _cols(rng, d)
    if rng.random() < 0.5:
        return (rng.choice((f"How many {d.entity} are there for each {t.phrase}?",
                            f"Show each {t.phrase} and the number of {d.entity} with it.")),
                f"SELECT {t.name}, COUNT(*) FROM {d.table} GROUP BY {t.name}")
    f, w = rng.choice(_AGG)
    return (f"What is the {w} {n.phrase} for each {t.phrase}?",
            f"SELECT {t.name}, {f}({n.name}) FROM {d.table} GROUP BY {t.name}")


def group_top(rng, d):
    t = rng.choice(d.text)
    most, direction = rng.choice((("most", "DESC"), ("fewest", "ASC")))
    q = rng.choice((f"Which {t.phrase} has the {most} {d.entity}?",
                    f"What is the {t.phrase} shared by the {most} {d.entity}?"))
    return q, f"SELECT {t.name} FROM {d.table} GROUP BY {t.name} ORDER BY COUNT(*) {direction} LIMIT 1"


def having(rng, d):
    t, n, _ = _cols(rng, d)
    k = rng.randint(2, 5)
    if rng.random() < 0.3:
        f, w = rng.choice(_AGG[:3])
        v = rng.choice(n.values)
        article = "an" if w[0] in "aeiou" else "a"
        return (f"Which {t.phrase} values have {article} {w} {n.phrase} above {v}?",
                f"SELECT {t.name} FROM {d.table} GROUP BY {t.name} HAVING {f}({n.name}) > {v}")
    op, words = rng.choice(((">=", "at least"), (">", "more than")))
    q = rng.choice((f"Which {t.phrase} values are shared by {words} {k} {d.entity}?",
                    f"List every {t.phrase} that {words} {k} {d.entity} have."))
    return q, f"SELECT {t.name} FROM {d.table} GROUP BY {t.name} HAVING COUNT(*) {op} {k}"


def order_by(rng, d):
    _, n, o = _cols(rng, d)
    direction, word, order = rng.choice((("DESC", "highest", "descending"), ("ASC", "lowest", "ascending")))
    roll = rng.random()
    if roll < 0.35:
        q = rng.choice((f"What is the {o.phrase} of the {d.entity} with the {word} {n.phrase}?",
                        f"Which {d.entity} has the {word} {n.phrase}? Give its {o.phrase}."))
        return q, f"SELECT {o.name} FROM {d.table} ORDER BY {n.name} {direction} LIMIT 1"
    if roll < 0.7:
        k = rng.randint(2, 5)
        return (f"List the {o.phrase} of the {k} {d.entity} with the {word} {n.phrase}.",
                f"SELECT {o.name} FROM {d.table} ORDER BY {n.name} {direction} LIMIT {k}")
    sql = f"SELECT {o.name} FROM {d.table} ORDER BY {n.name}" + (" DESC" if direction == "DESC" else "")
    return f"List the {o.phrase} of all {d.entity} in {order} order of {n.phrase}.", sql


def nested(rng, d):
    _, n, o = _cols(rng, d)
    more, op = rng.choice((("higher", ">"), ("lower", "<")))
    return (rng.choice((f"Which {d.entity} have a {n.phrase} {more} than the average? Give their {o.phrase}.",
                        f"Find the {o.phrase} of {d.entity} whose {n.phrase} is {more} than average.")),
            f"SELECT {o.name} FROM {d.table} WHERE {n.name} {op} (SELECT AVG({n.name}) FROM {d.table})")


def set_ops(rng, d):
    t, n, _ = _cols(rng, d)
    v1, v2 = sorted(rng.sample(n.values, 2))
    kind = rng.choice(("INTERSECT", "EXCEPT", "UNION"))
    if kind == "INTERSECT":
        q = f"Which {t.phrase} values have both {d.entity} with {n.phrase} below {v1} and {d.entity} with {n.phrase} above {v2}?"
    elif kind == "EXCEPT":
        q = f"Which {t.phrase} values have {d.entity} with {n.phrase} below {v1} but none with {n.phrase} above {v2}?"
    else:
        q = f"List the {t.phrase} of {d.entity} with {n.phrase} below {v1} or above {v2}."
    return q, (f"SELECT {t.name} FROM {d.table} WHERE {n.name} < {v1} {kind} "
               f"SELECT {t.name} FROM {d.table} WHERE {n.name} > {v2}")


def like(rng, d):
    t, _, o = _cols(rng, d)
    v = rng.choice(t.values)
    part = v[: rng.randint(2, len(v))]
    return (f'Find the {o.phrase} of {d.entity} whose {t.phrase} contains "{part}".',
            f'SELECT {o.name} FROM {d.table} WHERE {t.name} LIKE "%{part}%"')


SINGLE: dict[str, Callable] = {
    "where_eq": where_eq, "where_compare": where_compare, "where_bool": where_bool, "projection": projection,
    "count": count, "aggregate": aggregate, "distinct": distinct, "group_by": group_by, "group_top": group_top,
    "having": having, "order_by": order_by, "nested_avg": nested, "set_ops": set_ops, "like": like,
}
