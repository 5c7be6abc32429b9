"""Named (Spider-style) tables of the synthetic generator, and the parent/child pairs joined on a key.

Tables are whole, as a real database has them (an id, bookkeeping columns no question asks about);
a column with a `phrase` is one questions may name, `values` the ones they may filter on.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def text(self) -> tuple[Col, ...]:
        return tuple(c for c in self.askable if not c.numeric)

    @property
    def numbers(self) -> tuple[Col, ...]:
        return tuple(c for c in self.askable if c.numeric and not c.name.endswith("id"))


@dataclass(frozen=True)
class Pair:
    parent: Domain  # has `id`
    child: Domain  # has `key`, referring to parent.id
    key: str
    role: str  # the parent as the child's questions call it ("department")
    label: str  # the parent's name column


_FIRST = ("Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivan", "Jun")
_CITIES = ("Lisbon", "Osaka", "Denver", "Nairobi", "Krakow", "Austin", "Lyon", "Pune")

DOMAINS: tuple[Domain, ...] = (
    Domain("employees", "employees", (
        Col("id", "INTEGER"), Col("name", "VARCHAR", "name", _FIRST), Col("email", "VARCHAR"),
        Col("department", "VARCHAR", "department", ("Sales", "Finance", "Legal", "Research")),
        Col("hire_date", "VARCHAR"), Col("city", "VARCHAR", "city", _CITIES),
        Col("salary", "INTEGER", "salary", (40000, 55000, 70000, 90000, 120000)),
        Col("age", "INTEGER", "age", (25, 30, 41, 50, 62)), Col("manager_id", "INTEGER"))),
    Domain("products", "products", (
        Col("id", "INTEGER"), Col("sku", "VARCHAR"),
        Col("product_name", "VARCHAR", "product name", ("Lamp", "Desk", "Kettle", "Chair", "Radio")),
        Col("category", "VARCHAR", "category", ("Home", "Office", "Kitchen", "Audio")),
        Col("price", "REAL", "price", (9.5, 20.0, 45.25, 99.99, 150.0)), Col("supplier", "VARCHAR"),
        Col("stock", "INTEGER", "stock", (0, 5, 12, 40, 100)), Col("weight_kg", "REAL"))),
    Domain("students", "students", (
        Col("id", "INTEGER"), Col("student_name", "VARCHAR", "name", _FIRST), Col("email", "VARCHAR"),
        Col("major", "VARCHAR", "major", ("Biology", "History", "Physics", "Economics")),
        Col("gpa", "REAL", "GPA", (2.5, 3.0, 3.4, 3.8)), Col("advisor", "VARCHAR"), Col("credits", "INTEGER"),
        Col("enrollment_year", "INTEGER", "enrollment year", (2019, 2020, 2021, 2022, 2023)),
        Col("hometown", "VARCHAR", "hometown", _CITIES))),
    Domain("matches", "matches", (
        Col("id", "INTEGER"),
        Col("home_team", "VARCHAR", "home team", ("Lions", "Falcons", "Sharks", "Wolves", "Comets")),
        Col("away_team", "VARCHAR"),
        Col("venue", "VARCHAR", "venue", ("Riverside", "North Park", "Central Arena", "Harbor Field")),
        Col("attendance", "INTEGER", "attendance", (1200, 5000, 18000, 42000)), Col("referee", "VARCHAR"),
        Col("season", "INTEGER", "season", (2015, 2018, 2021, 2024)),
        Col("goals", "INTEGER", "number of goals", (0, 1, 2, 3, 5)), Col("kickoff_time", "VARCHAR"))),
    Domain("flights", "flights", (
        Col("id", "INTEGER"), Col("flight_number", "VARCHAR"),
        Col("airline", "VARCHAR", "airline", ("Aerolux", "SkyJet", "Nordair", "Pacifica")),
        Col("origin", "VARCHAR", "origin", _CITIES), Col("destination", "VARCHAR", "destination", _CITIES),
        Col("aircraft", "VARCHAR"), Col("departure_time", "VARCHAR"),
        Col("distance", "INTEGER", "distance", (300, 850, 1500, 4200)),
        Col("delay_minutes", "INTEGER", "delay in minutes", (0, 10, 25, 60, 120)))),
    Domain("books", "books", (
        Col("id", "INTEGER"), Col("isbn", "VARCHAR"),
        Col("title", "VARCHAR", "title", ("Dune", "Emma", "Ulysses", "Beloved", "Solaris")),
        Col("genre", "VARCHAR", "genre", ("Fiction", "Poetry", "Science", "History")), Col("publisher", "VARCHAR"),
        Col("pages", "INTEGER", "number of pages", (120, 250, 400, 800)),
        Col("publication_year", "INTEGER", "publication year", (1965, 1987, 2001, 2019)),
        Col("language", "VARCHAR"))),
)

PAIRS: tuple[Pair, ...] = (
    Pair(Domain("departments", "departments", (
        Col("id", "INTEGER"), Col("dept_name", "VARCHAR", "name", ("Sales", "Finance", "Legal", "Support")),
        Col("budget", "INTEGER", "budget", (100000, 250000, 900000)),
        Col("location", "VARCHAR", "location", _CITIES), Col("phone", "VARCHAR"), Col("floor", "INTEGER"))),
        Domain("staff", "staff members", (
            Col("id", "INTEGER"), Col("staff_name", "VARCHAR", "name", _FIRST), Col("email", "VARCHAR"),
            Col("department_id", "INTEGER"), Col("role", "VARCHAR", "role", ("Analyst", "Clerk", "Lead")),
            Col("salary", "INTEGER", "salary", (40000, 70000, 120000)))),
        "department_id", "department", "dept_name"),
    Pair(Domain("authors", "authors", (
        Col("id", "INTEGER"), Col("author_name", "VARCHAR", "name", _FIRST),
        Col("country", "VARCHAR", "country", ("Chile", "Japan", "Kenya", "Poland")),
        Col("birth_year", "INTEGER", "birth year", (1940, 1962, 1975, 1988)), Col("website", "VARCHAR"),
        Col("email", "VARCHAR"))),
        Domain("novels", "novels", (
            Col("id", "INTEGER"), Col("novel_title", "VARCHAR", "title", ("Dune", "Emma", "Solaris", "Beloved")),
            Col("author_id", "INTEGER"), Col("isbn", "VARCHAR"),
            Col("genre", "VARCHAR", "genre", ("Mystery", "Fantasy", "Romance")),
            Col("pages", "INTEGER", "number of pages", (120, 400, 800)))),
        "author_id", "author", "author_name"),
    Pair(Domain("clubs", "clubs", (
        Col("id", "INTEGER"), Col("club_name", "VARCHAR", "name", ("Harbor FC", "Northside", "Red Stags", "Valley United")),
        Col("city", "VARCHAR", "city", _CITIES), Col("founded", "INTEGER", "founding year", (1899, 1921, 1950, 1987)),
        Col("stadium", "VARCHAR"), Col("coach", "VARCHAR"), Col("colors", "VARCHAR"))),
        Domain("athletes", "athletes", (
            Col("id", "INTEGER"), Col("athlete_name", "VARCHAR", "name", _FIRST), Col("club_id", "INTEGER"),
            Col("position", "VARCHAR", "position", ("Keeper", "Defender", "Winger")),
            Col("age", "INTEGER", "age", (19, 23, 28, 33)), Col("goals", "INTEGER", "number of goals", (0, 4, 11, 20)),
            Col("contract_end", "VARCHAR"))),
        "club_id", "club", "club_name"),
    Pair(Domain("customers", "customers", (
        Col("id", "INTEGER"), Col("customer_name", "VARCHAR", "name", _FIRST),
        Col("city", "VARCHAR", "city", _CITIES), Col("signup_year", "INTEGER", "signup year", (2016, 2019, 2022)),
        Col("phone", "VARCHAR"), Col("email", "VARCHAR"))),
        Domain("orders", "orders", (
            Col("id", "INTEGER"), Col("customer_id", "INTEGER"),
            Col("status", "VARCHAR", "status", ("Shipped", "Pending", "Cancelled")),
            Col("amount", "REAL", "amount", (15.0, 80.5, 240.0, 999.0)), Col("order_date", "VARCHAR"),
            Col("channel", "VARCHAR", "channel", ("Web", "Catalog", "Store")))),
        "customer_id", "customer", "customer_name"),
    Pair(Domain("artists", "artists", (
        Col("id", "INTEGER"), Col("artist_name", "VARCHAR", "name", ("Mira Sol", "The Tides", "Kano", "Blue Fern")),
        Col("country", "VARCHAR", "country", ("Chile", "Japan", "Kenya", "Poland")),
        Col("debut_year", "INTEGER", "debut year", (1991, 2003, 2012, 2018)), Col("agent", "VARCHAR"),
        Col("website", "VARCHAR"))),
        Domain("albums", "albums", (
            Col("id", "INTEGER"), Col("album_title", "VARCHAR", "title", ("Lowlight", "Paper Moons", "Static")),
            Col("artist_id", "INTEGER"), Col("label", "VARCHAR", "label", ("Northway", "Glasshouse", "Indigo")),
            Col("producer", "VARCHAR"),
            Col("sales", "INTEGER", "sales", (5000, 40000, 250000)), Col("release_year", "INTEGER",
                                                                           "release year", (1999, 2008, 2015, 2021)))),
        "artist_id", "artist", "artist_name"),
)
