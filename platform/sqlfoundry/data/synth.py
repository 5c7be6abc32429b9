"""Synthetic text-to-SQL rows: random schemas, templated questions in plain English, SQL that runs.

Rows have the same three fields as sql-create-context (question, context, answer). Every template
yields SQLite that executes against its schema (tests run each one on sqlite). The generator is the
offline default for the quickstart and the starting point for "adapt to your own schema" data.
Tables are always written whole, as a real database has them (an id, bookkeeping columns no
question asks about), while each question uses only some columns: the model learns to choose.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Col:
    name: str
    type: str  # VARCHAR | INTEGER | REAL
    phrase: str = ""  # how a question names it; "" = in the table, never asked about
    values: tuple = ()  # values questions may filter on

    @property
    def numeric(self) -> bool:
        return self.type != "VARCHAR"


@dataclass(frozen=True)
class Domain:
    table: str
    entity: str  # plural noun used in questions
    columns: tuple[Col, ...]  # the whole table, in schema order

    @property
    def askable(self) -> tuple[Col, ...]:
        return tuple(c for c in self.columns if c.phrase)


def _names(*items: str) -> tuple:
    return items


_FIRST = _names("Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivan", "Jun")
_CITIES = _names("Lisbon", "Osaka", "Denver", "Nairobi", "Krakow", "Austin", "Lyon", "Pune")

DOMAINS: tuple[Domain, ...] = (
    Domain("employees", "employees", (
        Col("id", "INTEGER"),
        Col("name", "VARCHAR", "name", _FIRST),
        Col("email", "VARCHAR"),
        Col("department", "VARCHAR", "department", _names("Sales", "Finance", "Legal", "Research")),
        Col("hire_date", "VARCHAR"),
        Col("city", "VARCHAR", "city", _CITIES),
        Col("salary", "INTEGER", "salary", (40000, 55000, 70000, 90000, 120000)),
        Col("age", "INTEGER", "age", (25, 30, 41, 50, 62)),
        Col("manager_id", "INTEGER"),
    )),
    Domain("products", "products", (
        Col("id", "INTEGER"),
        Col("sku", "VARCHAR"),
        Col("product_name", "VARCHAR", "product name", _names("Lamp", "Desk", "Kettle", "Chair", "Radio")),
        Col("category", "VARCHAR", "category", _names("Home", "Office", "Kitchen", "Audio")),
        Col("price", "REAL", "price", (9.5, 20.0, 45.25, 99.99, 150.0)),
        Col("supplier", "VARCHAR"),
        Col("stock", "INTEGER", "stock", (0, 5, 12, 40, 100)),
        Col("weight_kg", "REAL"),
    )),
    Domain("students", "students", (
        Col("id", "INTEGER"),
        Col("student_name", "VARCHAR", "name", _FIRST),
        Col("email", "VARCHAR"),
        Col("major", "VARCHAR", "major", _names("Biology", "History", "Physics", "Economics")),
        Col("gpa", "REAL", "GPA", (2.5, 3.0, 3.4, 3.8)),
        Col("advisor", "VARCHAR"),
        Col("credits", "INTEGER"),
        Col("enrollment_year", "INTEGER", "enrollment year", (2019, 2020, 2021, 2022, 2023)),
        Col("hometown", "VARCHAR", "hometown", _CITIES),
    )),
    Domain("matches", "matches", (
        Col("id", "INTEGER"),
        Col("home_team", "VARCHAR", "home team", _names("Lions", "Falcons", "Sharks", "Wolves", "Comets")),
        Col("away_team", "VARCHAR"),
        Col("venue", "VARCHAR", "venue", _names("Riverside", "North Park", "Central Arena", "Harbor Field")),
        Col("attendance", "INTEGER", "attendance", (1200, 5000, 18000, 42000)),
        Col("referee", "VARCHAR"),
        Col("season", "INTEGER", "season", (2015, 2018, 2021, 2024)),
        Col("goals", "INTEGER", "number of goals", (0, 1, 2, 3, 5)),
        Col("kickoff_time", "VARCHAR"),
    )),
    Domain("flights", "flights", (
        Col("id", "INTEGER"),
        Col("flight_number", "VARCHAR"),
        Col("airline", "VARCHAR", "airline", _names("Aerolux", "SkyJet", "Nordair", "Pacifica")),
        Col("origin", "VARCHAR", "origin", _CITIES),
        Col("destination", "VARCHAR", "destination", _CITIES),
        Col("aircraft", "VARCHAR"),
        Col("departure_time", "VARCHAR"),
        Col("distance", "INTEGER", "distance", (300, 850, 1500, 4200)),
        Col("delay_minutes", "INTEGER", "delay in minutes", (0, 10, 25, 60, 120)),
    )),
    Domain("books", "books", (
        Col("id", "INTEGER"),
        Col("isbn", "VARCHAR"),
        Col("title", "VARCHAR", "title", _names("Dune", "Emma", "Ulysses", "Beloved", "Solaris")),
        Col("genre", "VARCHAR", "genre", _names("Fiction", "Poetry", "Science", "History")),
        Col("publisher", "VARCHAR"),
        Col("pages", "INTEGER", "number of pages", (120, 250, 400, 800)),
        Col("publication_year", "INTEGER", "publication year", (1965, 1987, 2001, 2019)),
        Col("language", "VARCHAR"),
    )),
)

# (parent, child): child has `<parent_key>` referring to parent.id, for two-table JOIN questions.
JOINS: tuple[tuple[Domain, Domain, str, str], ...] = (
    (Domain("departments", "departments", (
        Col("id", "INTEGER", "id", (1, 2, 3)),
        Col("dept_name", "VARCHAR", "department name", _names("Sales", "Finance", "Legal")),
        Col("budget", "INTEGER", "budget", (100000, 250000, 900000)),
        Col("location", "VARCHAR"),
        Col("phone", "VARCHAR"),
    )), Domain("staff", "staff members", (
        Col("id", "INTEGER"),
        Col("staff_name", "VARCHAR", "name", _FIRST),
        Col("email", "VARCHAR"),
        Col("department_id", "INTEGER", "department id", (1, 2, 3)),
        Col("salary", "INTEGER", "salary", (40000, 70000, 120000)),
    )), "department_id", "department"),
    (Domain("authors", "authors", (
        Col("id", "INTEGER", "id", (1, 2, 3)),
        Col("author_name", "VARCHAR", "author name", _FIRST),
        Col("country", "VARCHAR", "country", _names("Chile", "Japan", "Kenya", "Poland")),
        Col("birth_year", "INTEGER"),
        Col("website", "VARCHAR"),
    )), Domain("novels", "novels", (
        Col("id", "INTEGER"),
        Col("novel_title", "VARCHAR", "title", _names("Dune", "Emma", "Solaris")),
        Col("author_id", "INTEGER", "author id", (1, 2, 3)),
        Col("isbn", "VARCHAR"),
        Col("pages", "INTEGER", "number of pages", (120, 400, 800)),
    )), "author_id", "author"),
)

_AGGREGATES = (("COUNT", None), ("SUM", "total"), ("AVG", "average"), ("MIN", "lowest"), ("MAX", "highest"))


def _literal(value) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


def _ddl(domain: Domain, columns: tuple[Col, ...]) -> str:
    return f"CREATE TABLE {domain.table} (" + ", ".join(f"{c.name} {c.type}" for c in columns) + ")"


def _pick_columns(rng: random.Random, domain: Domain) -> tuple[Col, ...]:
    """The columns a question may use: a random subset of the askable ones (at least 3, always one
    text and one number), in schema order."""
    text = [c for c in domain.askable if not c.numeric]
    nums = [c for c in domain.askable if c.numeric]
    chosen = {rng.choice(text).name, rng.choice(nums).name}
    extra = [c.name for c in domain.askable if c.name not in chosen]
    chosen.update(rng.sample(extra, k=rng.randint(min(1, len(extra)), len(extra))))
    return tuple(c for c in domain.askable if c.name in chosen)


def _single_table(rng: random.Random) -> dict[str, str]:
    domain = rng.choice(DOMAINS)
    cols = _pick_columns(rng, domain)
    t, ent = domain.table, domain.entity
    text = [c for c in cols if not c.numeric]
    nums = [c for c in cols if c.numeric]
    a, b = rng.sample(cols, 2)
    txt, num = rng.choice(text), rng.choice(nums)
    tv, nv = rng.choice(txt.values), rng.choice(num.values)

    def projection():
        if rng.random() < 0.5:
            return f"List the {a.phrase} of all {ent}.", f"SELECT {a.name} FROM {t}"
        return f"What are the {a.phrase} and {b.phrase} of every entry in {t}?", f"SELECT {a.name}, {b.name} FROM {t}"

    def where_equal():
        other = rng.choice([c for c in cols if c != txt])
        return (f"What is the {other.phrase} of the {ent} whose {txt.phrase} is {tv}?",
                f"SELECT {other.name} FROM {t} WHERE {txt.name} = {_literal(tv)}")

    def where_compare():
        other = rng.choice([c for c in cols if c != num])
        op, word = rng.choice((("<", "less than"), (">", "greater than")))
        return (f"Which {other.phrase} belong to {ent} with a {num.phrase} {word} {nv}?",
                f"SELECT {other.name} FROM {t} WHERE {num.name} {op} {nv}")

    def where_bool():
        conj = rng.choice(("AND", "OR"))
        other = rng.choice([c for c in cols if c not in (txt, num)] or [txt])
        return (f"Show the {other.phrase} of {ent} whose {txt.phrase} is {tv} {conj.lower()} whose "
                f"{num.phrase} is above {nv}.",
                f"SELECT {other.name} FROM {t} WHERE {txt.name} = {_literal(tv)} {conj} {num.name} > {nv}")

    def aggregate():
        func, word = rng.choice(_AGGREGATES)
        if func == "COUNT":
            return (f"How many {ent} have the {txt.phrase} {tv}?",
                    f"SELECT COUNT(*) FROM {t} WHERE {txt.name} = {_literal(tv)}")
        return f"What is the {word} {num.phrase} of all {ent}?", f"SELECT {func}({num.name}) FROM {t}"

    def group_by():
        if rng.random() < 0.5:
            return (f"How many {ent} are there for each {txt.phrase}?",
                    f"SELECT {txt.name}, COUNT(*) FROM {t} GROUP BY {txt.name}")
        func, word = rng.choice(_AGGREGATES[1:])
        return (f"What is the {word} {num.phrase} for each {txt.phrase}?",
                f"SELECT {txt.name}, {func}({num.name}) FROM {t} GROUP BY {txt.name}")

    def order_limit():
        k = rng.randint(1, 5)
        direction, word = rng.choice((("DESC", "highest"), ("ASC", "lowest")))
        other = rng.choice([c for c in cols if c != num])
        return (f"List the {other.phrase} of the {k} {ent} with the {word} {num.phrase}.",
                f"SELECT {other.name} FROM {t} ORDER BY {num.name} {direction} LIMIT {k}")

    template: Callable = rng.choice(
        (projection, where_equal, where_compare, where_bool, aggregate, group_by, order_limit))
    question, sql = template()
    return {"question": question, "context": _ddl(domain, domain.columns), "answer": sql}


def _join(rng: random.Random) -> dict[str, str]:
    parent, child, key, role = rng.choice(JOINS)
    p_name = next(c for c in parent.askable if c.type == "VARCHAR" and c.name != "id")
    p_other = parent.askable[-1]
    c_text = next(c for c in child.askable if c.type == "VARCHAR")
    c_num = child.askable[-1]
    context = _ddl(parent, parent.columns) + "; " + _ddl(child, child.columns)
    on = f"FROM {child.table} AS T1 JOIN {parent.table} AS T2 ON T1.{key} = T2.id"
    if rng.random() < 0.5:
        value = rng.choice(p_other.values)
        cond = f"T2.{p_other.name} = {_literal(value)}"
        question = f"Which {child.entity} have a {role} whose {p_other.phrase} is {value}? Give their {c_text.phrase}."
        sql = f"SELECT T1.{c_text.name} {on} WHERE {cond}"
    else:
        question = f"For each of the {child.entity}, what is the {c_text.phrase} and the {role}'s {p_name.phrase}?"
        sql = f"SELECT T1.{c_text.name}, T2.{p_name.name} {on}"
    if rng.random() < 0.3:
        question = f"What is the total {c_num.phrase} of {child.entity} for each {role} {p_name.phrase}?"
        sql = f"SELECT T2.{p_name.name}, SUM(T1.{c_num.name}) {on} GROUP BY T2.{p_name.name}"
    return {"question": question, "context": context, "answer": sql}


def generate_rows(n: int, seed: int = 0, join_fraction: float = 0.15) -> list[dict[str, str]]:
    """`n` rows; the same (n, seed) always gives the same rows."""
    rng = random.Random(seed)
    return [_join(rng) if rng.random() < join_fraction else _single_table(rng) for _ in range(n)]
