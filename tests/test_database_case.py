"""Names whose case matters: a PostgreSQL database built with quoted mixed-case names ("Singer",
"Singer_ID", as Spider's databases have them) answers the model's case-insensitive SQLite SQL,
because run_candidate spells names as the database does. The same cases on the sqlite original."""

import sqlite3

import pytest

from pgcopy import copy_sqlite

from sqlfoundry.databases import Database, DatabaseConfig, run_candidate

SINGERS = [(1, "Joe Sharp", "Netherlands", 52), (2, "Timbaland", "United States", 32),
           (3, "Justin Brown", "France", 29), (4, "Rose White", "France", 41)]
CONCERTS = [(1, "Super bootcamp", 2), (2, "Home Visits", 2), (3, "Week 1", 4)]


@pytest.fixture(scope="module")
def cased(tmp_path_factory, request) -> dict:
    """{engine: Database} of one mixed-case database, as a sqlite file and copied into PostgreSQL."""
    path = tmp_path_factory.mktemp("cased") / "concert_singer.sqlite"
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE "Singer" ("Singer_ID" INTEGER PRIMARY KEY, "Name" TEXT, "Country" TEXT, "Age" INTEGER)')
    # concert spells singer_id in lower case: one name, two spellings, as in real schemas
    conn.execute('CREATE TABLE concert (concert_ID INTEGER PRIMARY KEY, concert_Name TEXT, '
                 'singer_id INTEGER, FOREIGN KEY (singer_id) REFERENCES Singer (singer_id))')
    conn.executemany("INSERT INTO Singer VALUES (?, ?, ?, ?)", SINGERS)
    conn.executemany("INSERT INTO concert VALUES (?, ?, ?)", CONCERTS)
    conn.commit()
    conn.close()
    databases = {"sqlite": Database("cased", DatabaseConfig(url=f"sqlite:///{path}"), {})}
    server = request.getfixturevalue("postgres_server")
    skipped = copy_sqlite(path, server, "cased", "cased_reader", "cased-pw")
    assert skipped == {"primary_keys": [], "foreign_keys": []}
    databases["postgres"] = Database("cased", DatabaseConfig(url=server.url("cased_reader", "cased"),
                                                             password_env="PW"), {"PW": "cased-pw"})
    yield databases
    for db in databases.values():
        db.dispose()


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_introspection_keeps_the_case_of_names(cased, engine):
    tables = cased[engine].schema().tables
    assert [t.name for t in tables] == ["Singer", "concert"]
    assert tables[0].column_names == ("Singer_ID", "Name", "Country", "Age")
    # The DDL wrote the key in lower case (sqlite matches any case); the columns as the tables spell them.
    [key] = tables[1].foreign_keys
    assert key.columns == ("singer_id",) and key.table == "Singer"
    assert key.references == (("singer_id",) if engine == "sqlite" else ("Singer_ID",))


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
@pytest.mark.parametrize("sql, expected", [
    ("SELECT count(*) FROM singer", [[4]]),
    ("SELECT name FROM singer WHERE country = 'France' ORDER BY age DESC", [["Rose White"], ["Justin Brown"]]),
    ("SELECT T1.Name, count(*) FROM SINGER AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
     "GROUP BY T1.singer_id ORDER BY count(*) DESC, T1.name", [["Timbaland", 2], ["Rose White", 1]]),
    ("SELECT singer.name AS name FROM singer ORDER BY name LIMIT 1", [["Joe Sharp"]]),  # alias = column name
    ("SELECT country, count(*) AS singer_id FROM singer GROUP BY country ORDER BY singer_id DESC, country",
     [["France", 2], ["Netherlands", 1], ["United States", 1]]),  # an alias spelled like a column stays bare
    ('SELECT "name" FROM "SINGER" WHERE "country" = "Netherlands"', [["Joe Sharp"]]),  # quoted, other case
    # each column spelled as its own table spells it: Singer_ID here, singer_id in concert
    ("SELECT s.Name FROM singer s WHERE s.Singer_ID IN (SELECT singer_id FROM concert) ORDER BY s.name",
     [["Rose White"], ["Timbaland"]]),
    ("SELECT name FROM singer AS s WHERE EXISTS (SELECT 1 FROM concert AS c WHERE c.singer_id = s.singer_id) "
     "ORDER BY name", [["Rose White"], ["Timbaland"]]),  # correlated: s is the outer query's
    ("SELECT AVG(Age) AS age FROM singer", [[38.5]]),  # an alias named like a column: the column inside
    ("SELECT name AS Name FROM singer ORDER BY Name",
     [["Joe Sharp"], ["Justin Brown"], ["Rose White"], ["Timbaland"]]),
    # a double-quoted string spelled like another table's column is still a string (in scope)
    ('SELECT count(*) FROM singer WHERE country <> "concert_Name"', [[4]]),
    ("SELECT concert_name FROM concert WHERE singer_id IN (SELECT singer_id FROM singer WHERE age < 40)",
     [["Super bootcamp"], ["Home Visits"]]),
])
def test_case_insensitive_sqlite_sql_runs_where_case_matters(cased, engine, sql, expected):
    result = run_candidate(cased[engine], sql)
    assert result.error is None and result.valid, (result.sql, result.error)
    assert result.rows == expected
