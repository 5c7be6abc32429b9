"""Real databases: the same table of cases on sqlite, DuckDB and a real PostgreSQL server (started by
the session fixture `postgres_server` in conftest.py), through sqlfoundry.databases."""

import asyncio
import dataclasses
import functools
import json
import logging
import sqlite3
import types
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shopdb import CUSTOMERS, ORDERS, READER_PASSWORD, open_shop, shop_settings

from sqlfoundry.databases import Database, DatabaseConfig, DatabaseError, Databases, execute_read_only, run_candidate
from sqlfoundry.config.loader import ConfigError
from sqlfoundry.databases.config import parse_database_config
from sqlfoundry.databases.connect import key_digest
from sqlfoundry.serving.config import ServeConfigError, parse_serve_config
from sqlfoundry.databases.execute import prepare_sql
from sqlfoundry.sql.schema import parse_schema, render_schema

ENGINES = ["sqlite", "duckdb", "postgres"]


# What the inspector reads back, rendered as training data is: types in sqlglot's canonical
# spelling (DuckDB keeps no VARCHAR length), keys as table lines.
KEYS_AND_ORDERS = ("PRIMARY KEY (id)); CREATE TABLE orders (id INTEGER, customer_id INTEGER, amount DECIMAL(10, 2), "
                   "placed DATE, PRIMARY KEY (id), FOREIGN KEY (customer_id) REFERENCES customers (id))")


@pytest.mark.parametrize("engine, customers", [
    ("sqlite", "CREATE TABLE customers (id INTEGER, name VARCHAR(50), country VARCHAR(30), "),
    ("duckdb", "CREATE TABLE customers (id INTEGER, name TEXT, country TEXT, "),
    ("postgres", "CREATE TABLE customers (id INTEGER, name VARCHAR(50), country VARCHAR(30), "),
])
def test_introspection_matches_the_fixture(request, engine, customers):
    snapshot = open_shop(request, engine).schema()
    assert snapshot.text == customers + KEYS_AND_ORDERS
    assert snapshot.text == render_schema(snapshot.tables)  # the one rendering function
    orders = snapshot.tables[1]
    assert [t.name for t in snapshot.tables] == ["customers", "orders"]
    assert orders.column_names == ("id", "customer_id", "amount", "placed") and orders.primary_key == ("id",)
    assert [(fk.columns, fk.table, fk.references) for fk in orders.foreign_keys] == [(("customer_id",), "customers",
                                                                                        ("id",))]


@pytest.mark.parametrize("engine", ENGINES)
def test_schema_is_cached_and_refreshed_with_sample_values(request, engine):
    cached = open_shop(request, engine, sample_values=2, schema_refresh_s=300)
    first = cached.schema()
    assert cached.schema() is first
    assert first.samples["customers"]["country"] == ["France", "Japan"]
    assert "-- customers.country values: 'France', 'Japan'" in first.text
    assert "orders" not in first.samples  # no text columns there
    fresh = open_shop(request, engine, schema_refresh_s=0)
    assert fresh.schema() is not fresh.schema()


def _japan_orders() -> list[list]:
    japan = {cid: name for cid, name, country in CUSTOMERS if country == "Japan"}
    counts = {}
    for _, customer, _, _ in ORDERS:
        if customer in japan:
            counts[japan[customer]] = counts.get(japan[customer], 0) + 1
    return [[name, counts[name]] for name in sorted(counts)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sql, expected", [
    ("SELECT c.name, COUNT(*) FROM customers AS c JOIN orders AS o ON o.customer_id = c.id "
     "WHERE c.country = 'Japan' GROUP BY c.name ORDER BY c.name", _japan_orders()),
    # % in a literal reaches the database as written (no driver placeholder formatting)
    ("SELECT name FROM customers WHERE name LIKE '%1_' ORDER BY name", [["customer 10"], ["customer 11"],
                                                                         ["customer 12"]]),
    # SQLite reads an unknown "double-quoted" name as a string (the model writes WikiSQL's literals so):
    # elsewhere it would be a column, so it is made a literal before transpiling
    ('SELECT COUNT(*) FROM customers WHERE country = "Japan"', [[4]]),
    # IFNULL is SQLite's; PostgreSQL has only COALESCE: the transpilation makes it run there
    ("SELECT IFNULL(country, 'none'), SUM(amount) FROM customers JOIN orders ON customers.id = orders.customer_id "
     "WHERE customers.id = 2 GROUP BY country", [["USA", 2.5 * sum(i for i, c, _, _ in ORDERS if c == 2)]]),
])
def test_generated_sqlite_sql_runs_in_the_database_dialect(request, engine, sql, expected):
    result = run_candidate(open_shop(request, engine), sql)
    assert result.error is None and result.valid, result.error
    assert result.rows == expected and result.row_count == len(expected) and not result.truncated
    assert result.dialect == {"postgres": "postgres"}.get(engine, engine)
    assert len(result.columns) == len(expected[0])


# (engine, owner, statement, refusal): what the database itself refuses when the validator is off.
# Host files: DuckDB by its config (enable_external_access off, locked), PostgreSQL by the role.
WRITE_REFUSALS = {"sqlite": "not authorized",  # the authorizer (and mode=ro underneath)
                  "duckdb": "read-only mode",
                  "postgres": "read-only transaction"}  # as the owner: the transaction refuses, not the role
PAST_THE_VALIDATOR = [(engine, True, write, refusal) for engine, refusal in WRITE_REFUSALS.items() for write in [
    "INSERT INTO customers VALUES (99, 'mallory', 'Nowhere')",
    "UPDATE orders SET amount = 0",
    "DELETE FROM orders",
    "DROP TABLE orders",
]] + [
    ("duckdb", True, "COPY (SELECT 42) TO '{file}'", "disabled by configuration"),
    ("duckdb", True, "SELECT * FROM read_text('/etc/hostname')", "disabled by configuration"),
    ("duckdb", True, "SELECT * FROM read_csv('/etc/hostname')", "disabled by configuration"),
    ("duckdb", True, "SET enable_external_access = true", "configuration has been locked"),
    ("duckdb", True, "INSTALL httpfs", "disabled by configuration"),
    ("sqlite", True, "ATTACH DATABASE '{file}' AS other", "not authorized"),
    ("postgres", False, "COPY (SELECT 42) TO '{file}'", "pg_write_server_files"),
    ("postgres", False, "SELECT pg_read_file('/etc/hostname')", "permission denied"),
    # more than one statement in a string: never run, whatever the first one is
    ("sqlite", True, "SELECT COUNT(*) FROM orders; DELETE FROM orders", "one statement at a time"),
    ("duckdb", True, "SELECT COUNT(*) FROM orders; DELETE FROM orders", "exactly one statement"),
    ("duckdb", True, "SELECT 1; SELECT 2", "exactly one statement"),
    ("postgres", True, "SELECT COUNT(*) FROM orders; DELETE FROM orders", "multiple commands"),
    ("postgres", True, "COMMIT; DELETE FROM orders", "multiple commands"),
]


@pytest.mark.parametrize("engine, owner, write, refusal", PAST_THE_VALIDATOR)
def test_a_write_past_a_disabled_validator_still_fails_in_the_database(request, tmp_path, engine, owner, write,
                                                                       refusal):
    db = open_shop(request, engine, owner=owner)
    target = tmp_path / "written.out"
    write = write.format(file=target)
    assert run_candidate(db, write).error_kind == "invalid"  # the validator would have stopped it
    result = execute_read_only(db, write)  # ... and without it the database does
    assert result.error_kind == "runtime_error" and refusal in result.error, result.error
    assert not target.exists()
    after = execute_read_only(db, "SELECT COUNT(*) FROM customers UNION ALL SELECT COUNT(*) FROM orders")
    assert after.rows == [[len(CUSTOMERS)], [len(ORDERS)]]


SLOW = {
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n",
    "duckdb": "SELECT COUNT(*) FROM range(200000) AS a, range(200000) AS b WHERE a.range + b.range < 0",
    "postgres": "SELECT pg_sleep(30)",  # pg_sleep is off the allow-list: only a disabled validator runs it
}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_query_past_timeout_s_is_cancelled_in_the_database(request, engine):
    db = open_shop(request, engine, timeout_s=0.5)
    result = execute_read_only(db, SLOW[engine])
    assert result.error_kind == "timeout" and "0.5s" in result.error and "'shop'" in result.error
    assert result.seconds < 5
    if engine == "postgres":  # cancelled by the server itself: nothing of it still runs there
        busy = execute_read_only(open_shop(request, engine, owner=True),
                                 "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' "
                                 "AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()")
        assert busy.rows == [[0]]
    assert execute_read_only(db, "SELECT COUNT(*) FROM orders").rows == [[len(ORDERS)]]  # the pool still works


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("database_max, asked, rows, truncated", [
    (5, None, 5, True),
    (5, 3, 3, True),
    (5, 50, 5, True),  # a request never gets more than the database allows
    (len(ORDERS), None, len(ORDERS), False),
])
def test_max_rows_truncates_and_says_so(request, engine, database_max, asked, rows, truncated):
    db = open_shop(request, engine, max_rows=database_max)
    result = run_candidate(db, "SELECT id FROM orders ORDER BY id", max_rows=asked)
    assert result.row_count == rows and result.truncated is truncated
    assert result.rows == [[i] for i in range(1, rows + 1)]


@pytest.mark.parametrize("engine", ENGINES)
def test_concurrent_queries_share_the_pooled_engine(request, engine):
    """One engine per database per process, used from many threads at once (serving runs queries
    in worker threads), each query alone in its read-only transaction."""
    db = open_shop(request, engine, max_rows=100)
    tables = db.schema().tables
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: run_candidate(db, f"SELECT COUNT(*) FROM orders WHERE id > {i}",
                                                        tables=tables), range(16)))
    assert [r.rows for r in results] == [[[len(ORDERS) - i]] for i in range(16)]
    assert db.engine is db.engine and db.engine.pool.checkedout() == 0


def _unreachable(url: str) -> str:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return make_url(url).set(port=port).render_as_string(hide_password=False)


# (case, url and env from the shop fixture, reason): a caller is told the database and a short
# reason; host, port, role and file path stay in the process log.
CONNECT_FAILURES = [
    ("wrong password", "postgres", lambda url: url, {"SALES_PW": "hunter2-wrong-Pw"}, "authentication failed"),
    ("no such database", "postgres", lambda url: make_url(url).set(database="nope").render_as_string(),
     {"SALES_PW": READER_PASSWORD}, "no such database or file"),
    ("nothing listening", "postgres", _unreachable, {"SALES_PW": READER_PASSWORD}, "unreachable"),
    ("missing file", "duckdb", lambda url: url.replace("shop.duckdb", "missing.duckdb"), {},
     "no such database or file"),
    ("missing file", "sqlite", lambda url: url.replace("shop.db", "missing.db"), {}, "no such database or file"),
]


@pytest.mark.parametrize("case, engine, make, env, reason", CONNECT_FAILURES)
def test_a_connect_failure_names_the_database_and_a_reason_not_the_connection(request, caplog, case, engine,
                                                                               make, env, reason):
    url = make(shop_settings(request, engine)["url"])
    db = Database("sales", DatabaseConfig(url=url, password_env="SALES_PW" if env else None), env)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(DatabaseError) as raised:
            db.schema()
    assert raised.value.kind == "connect_failed"
    assert raised.value.message == f"database 'sales': cannot connect ({reason})"
    parsed = make_url(url)
    for detail in (parsed.host, parsed.port, parsed.username, parsed.database):
        assert detail is None or str(detail) not in raised.value.message
    assert "'sales': cannot connect" in caplog.text  # the driver's line is in the process log ...
    for secret in (*env.values(), READER_PASSWORD):  # ... without a password
        assert secret not in raised.value.message and secret not in caplog.text and secret not in repr(db.engine)


def test_an_unset_password_env_is_named(request):
    pg = request.getfixturevalue("shop_postgres")
    unset = Database("sales", DatabaseConfig(url=pg["url"], password_env="SALES_PW"), {})
    with pytest.raises(DatabaseError, match="SALES_PW .password_env. is not set"):
        unset.schema()


@pytest.mark.parametrize("url", ["postgresql://reader:s3cret-pw@127.0.0.1/shop", "postgresql+asyncpg://u@h/db",
                                 "postgresql://reader@127.0.0.1/shop?password=s3cret-pw",
                                 "postgresql://reader@127.0.0.1/shop?sslmode=disable&PassWord=s3cret-pw",
                                 "postgresql://reader@127.0.0.1/shop?passfile=/tmp/s3cret-pw",
                                 "mysql://u@h/db", "sqlite://", "not a url"])
def test_bad_urls_are_refused_naming_the_field_without_echoing_a_password(url):
    with pytest.raises(ConfigError) as raised:
        parse_database_config({"url": url})
    with pytest.raises(ServeConfigError) as served:
        parse_serve_config({"databases": {"sales": {"url": url}}})
    assert "url:" in str(raised.value) and "databases.sales.url:" in str(served.value)
    assert "s3cret-pw" not in str(raised.value) + str(served.value)
    if "s3cret-pw" in url:  # in the user part or the query string: the same rule, the same fix
        assert "must not contain a password" in str(raised.value) and "password_env" in str(raised.value)


def test_a_key_without_access_cannot_tell_the_database_exists(request):
    url = request.getfixturevalue("shop_files")["sqlite"]
    databases = Databases({"open": DatabaseConfig(url=url),
                           "private": DatabaseConfig(url=url, api_keys=[key_digest("alice-key")])}, {})
    assert [db.name for db in databases.visible("alice-key")] == ["open", "private"]
    assert [db.name for db in databases.visible("bob-key")] == ["open"]
    assert [db.name for db in databases.visible(None)] == ["open"]
    assert databases.get("private", "alice-key").name == "private"
    messages = set()
    for name, key in [("private", "bob-key"), ("private", None), ("missing", "alice-key")]:
        with pytest.raises(DatabaseError) as raised:
            databases.get(name, key)
        assert raised.value.kind == "unknown_database"
        messages.add(raised.value.message.replace(repr(name), "NAME"))
    assert len(messages) == 1  # the same answer whether the name exists or not


def test_ask_help():
    from sqlfoundry.cli import main

    with pytest.raises(SystemExit) as raised:
        main(["ask", "--help"])
    assert raised.value.code == 0


def test_ask_prints_the_sql_or_why_it_was_not_run(request, tiny_model_dir, capsys):
    """The tiny random model writes garbage: the command says so (exit 1), it does not run it."""
    from sqlfoundry.cli import main

    url = request.getfixturevalue("shop_files")["duckdb"]
    code = main(["ask", "--database", url, "--question", "How many orders?", "--base", str(tiny_model_dir),
                 "--max-new-tokens", "8", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["dialect"] == "duckdb"
    assert (code, result["valid"]) in {(1, False), (0, True), (1, True)}
    if not result["valid"]:
        assert result["error_kind"] == "invalid" and result["rows"] == []


@pytest.mark.parametrize("extra, env, message", [
    (["--password-env", "ASK_PW"], {"ASK_PW": "nope-wrong-Pw"}, "'shop': cannot connect"),
    ([], {}, "'shop': cannot connect"),  # no password at all
])
def test_ask_database_errors_exit_2_without_the_password(request, monkeypatch, capsys, extra, env, message):
    from sqlfoundry.cli import main

    pg = request.getfixturevalue("shop_postgres")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["ask", "--database", pg["url"], "--question", "q", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "nope-wrong-Pw" not in err and "Traceback" not in err


def test_ask_refuses_a_password_in_the_url(capsys):
    from sqlfoundry.cli import main

    assert main(["ask", "--database", "postgresql://reader:pw-in-url-9@127.0.0.1/shop", "--question", "q"]) == 2
    err = capsys.readouterr().err
    assert "password_env" in err and "pw-in-url-9" not in err


def test_rows_print_as_a_table():
    from sqlfoundry.cli.common import text_table as _table

    assert _table(["name", "n"], [["Ann", 3], ["Bo", None]]).splitlines() == [
        "name | n", "-----+-----", "Ann  | 3", "Bo   | NULL"]


INJECTED = "x\n; CREATE TABLE pg_shadow (passwd TEXT) --"
NOTES = [INJECTED, "a\r\nb\tc\x00d\u2028e\x1b[31m", "z" * 500]


def _notes_db(tmp_path, engine: str) -> str:
    """A file database whose stored text tries to end the sample-value comment and add a table."""
    if engine == "sqlite":
        conn = sqlite3.connect(tmp_path / "notes.db")
    else:
        import duckdb

        conn = duckdb.connect(str(tmp_path / "notes.duckdb"))
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    for i, body in enumerate(NOTES):
        conn.execute("INSERT INTO notes VALUES (?, ?)", [i, body])
    conn.commit()
    conn.close()
    return f"sqlite:///{tmp_path / 'notes.db'}" if engine == "sqlite" else f"duckdb:///{tmp_path / 'notes.duckdb'}"


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_sample_values_stay_on_their_comment_line(tmp_path, engine):
    snapshot = Database("notes", DatabaseConfig(url=_notes_db(tmp_path, engine), sample_values=5), {}).schema()
    statements, *comments = snapshot.text.splitlines()
    assert statements == render_schema(snapshot.tables) and len(comments) == 1
    assert comments[0].startswith("-- notes.body values: ")
    assert "'x ; CREATE TABLE pg_shadow (passwd TEXT) --'" in comments[0]
    assert "'a b c d e [31m'" in comments[0] and "'" + "z" * 60 + "'" in comments[0]
    assert [t.name for t in parse_schema(snapshot.text)] == ["notes"]  # no table from the data


def _fake_ingress(databases: Databases, sql: str, others: tuple[str, ...] = ()):
    """SQLIngress's own route helpers on a stand-in object: no Ray, a model that writes `sql` (and
    `others` as further candidates, when asked for more than one). `ingress.asked` keeps its requests."""
    from sqlfoundry.serving.app import SQLIngress

    async def generate(request):
        ingress.asked.append(request)
        sqls = [sql, *others][:request.candidates or 1]
        return {"error": None, "sql": sql, "adapter": None, "prompt_tokens": 1, "completion_tokens": 1,
                "confidence": None, "candidates_considered": len(sqls), "pruned_tables": [], "pruned_columns": [],
                "few_shot": 0, "repaired": False,
                "candidates": [{"sql": s, "greedy": i == 0, "problem": None, "group": None, "repair": False}
                               for i, s in enumerate(sqls)]}

    cls = SQLIngress.func_or_class
    ingress = types.SimpleNamespace(databases=databases, config=parse_serve_config({}), model_budget_s=None,
                                    model=types.SimpleNamespace(generate=types.SimpleNamespace(remote=generate)),
                                    asked=[])
    for name in ("_schema", "_sql_schema", "_answer", "_generate", "_check_candidates", "_query"):
        setattr(ingress, name, functools.partial(getattr(cls, name), ingress))
    return ingress


@pytest.mark.parametrize("sql, valid", [("SELECT passwd FROM pg_shadow", False), ("SELECT body FROM notes", True)])
def test_sql_for_a_database_is_checked_against_its_introspected_tables_not_the_text(tmp_path, sql, valid):
    from sqlfoundry.serving.api import SqlBody

    databases = Databases({"notes": DatabaseConfig(url=_notes_db(tmp_path, "sqlite"), sample_values=5)}, {})
    db = databases.by_name["notes"]
    snapshot = db.schema()
    # Even if the rendered text did carry an extra table, only the introspected ones count.
    db._snapshot = dataclasses.replace(snapshot, text=snapshot.text + "\nCREATE TABLE pg_shadow (passwd TEXT);")
    ingress = _fake_ingress(databases, sql)
    request = types.SimpleNamespace(headers={}, state=types.SimpleNamespace(request_id="test"))

    async def ask():
        schema, dialect, tables = await ingress._sql_schema(SqlBody(database="notes", question="q"), request)
        return await ingress._answer(schema, "q", dialect, None, None, request, None, tables)

    answer = asyncio.run(ask())
    assert answer["valid"] is valid, answer["error"]
    if not valid:
        assert "pg_shadow" in answer["error"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("asked, rows, confidence, considered", [
    (None, [[4]], None, 1),  # the deployment's default: one candidate, the greedy SQL run
    (3, [[len(ORDERS)]], 2 / 3, 3),  # two of three candidates agree on the real rows
])
def test_query_candidates_run_on_the_database_and_the_vote_is_on_its_rows(request, engine, asked, rows,
                                                                          confidence, considered):
    """/v1/query: the replica is asked not to execute (execute_candidates false) and the ingress
    runs the candidates on the database itself."""
    from sqlfoundry.serving.api import QueryBody

    shop = shop_settings(request, engine)
    databases = Databases({"shop": DatabaseConfig(url=shop["url"], password_env=shop["password_env"])}, shop["env"])
    japan = "SELECT COUNT(*) FROM customers WHERE country = 'Japan'"
    ingress = _fake_ingress(databases, japan, ("SELECT COUNT(*) FROM orders", "SELECT COUNT(id) FROM orders"))
    request_ = types.SimpleNamespace(headers={}, state=types.SimpleNamespace(request_id="test"))
    body = QueryBody(database="shop", question="how many orders?", candidates=asked)
    answer = asyncio.run(ingress._query(body, request_))
    assert [r.execute_candidates for r in ingress.asked] == [False]
    assert answer["rows"] == rows and answer["valid"] and answer["error"] is None
    assert answer["candidates_considered"] == considered
    assert answer["confidence"] == pytest.approx(confidence) if confidence else answer["confidence"] is None


def test_query_candidates_past_the_deployment_limit_are_422(request):
    from sqlfoundry.serving.api import ApiError, QueryBody

    databases = Databases({"shop": DatabaseConfig(url=request.getfixturevalue("shop_files")["sqlite"])}, {})
    ingress = _fake_ingress(databases, "SELECT 1")
    request_ = types.SimpleNamespace(headers={}, state=types.SimpleNamespace(request_id="test"))
    with pytest.raises(ApiError) as err:
        asyncio.run(ingress._query(QueryBody(database="shop", question="q", candidates=9), request_))
    assert err.value.status == 422 and err.value.param == "candidates" and not ingress.asked


SCHEMA_NAMES = {"sqlite": "main", "duckdb": "main", "postgres": "public"}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sql, named", [
    ("SELECT * FROM hr.orders", "hr.orders"),
    ("SELECT o.id FROM customers JOIN secret.orders AS o ON o.customer_id = customers.id", "secret.orders"),
    ("SELECT * FROM other.{schema}.orders", "other.{schema}.orders"),  # a catalog: never
    ("SELECT COUNT(*) FROM {schema}.orders", None),  # the introspected schema itself is fine
])
def test_tables_qualified_with_another_schema_are_refused(request, engine, sql, named):
    db = open_shop(request, engine)
    sql = sql.format(schema=SCHEMA_NAMES[engine])
    result = run_candidate(db, sql)
    assert db.schema_name == SCHEMA_NAMES[engine]
    if named is None:
        assert result.valid and result.rows == [[len(ORDERS)]], result.error
    else:
        assert result.error_kind == "invalid" and named.format(schema=SCHEMA_NAMES[engine]) in result.error
    # With no introspected schema to compare with, every qualified name is refused.
    assert not prepare_sql(sql, db.schema().tables, db.dialect)[1]


def test_postgres_introspection_keeps_only_what_the_role_can_read(request):
    """A table the role may not SELECT is left out; one whose sample values fail (a row policy that
    raises) keeps its columns and loses only its samples, the rest of the snapshot stays."""
    owner = open_shop(request, "postgres", owner=True)
    setup = ["CREATE TABLE payroll (id INTEGER PRIMARY KEY, who TEXT)",
             "INSERT INTO payroll VALUES (1, 'ceo')",
             "CREATE TABLE audited (id INTEGER PRIMARY KEY, note TEXT)",
             "INSERT INTO audited VALUES (1, 'seen')",
             "ALTER TABLE audited ENABLE ROW LEVEL SECURITY",
             "CREATE POLICY boom ON audited USING (1 / (id - id) = 1)",
             "GRANT SELECT ON audited TO reader"]
    with owner.engine.begin() as conn:
        conn.execute(sa.text("SET TRANSACTION READ WRITE"))
        for statement in setup:
            conn.execute(sa.text(statement))
    try:
        snapshot = open_shop(request, "postgres", sample_values=2).schema()
        assert [t.name for t in snapshot.tables] == ["audited", "customers", "orders"]
        assert "payroll" not in snapshot.text
        assert set(snapshot.samples) == {"customers"} and "'France', 'Japan'" in snapshot.text
    finally:
        with owner.engine.begin() as conn:
            conn.execute(sa.text("SET TRANSACTION READ WRITE"))
            conn.execute(sa.text("DROP TABLE payroll, audited"))
        owner.dispose()


@pytest.mark.parametrize("engine", ENGINES)
def test_queries_reuse_one_pooled_connection(request, engine):
    db = open_shop(request, engine)
    connects, invalidated, checked_out = [], [], []
    sa.event.listen(db.engine, "connect", lambda dbapi, record: connects.append(id(dbapi)))
    sa.event.listen(db.engine, "invalidate", lambda dbapi, record, err: invalidated.append(err))
    sa.event.listen(db.engine, "checkout", lambda dbapi, record, proxy: checked_out.append(id(dbapi)))
    for _ in range(3):
        assert execute_read_only(db, "SELECT COUNT(*) FROM orders").rows == [[len(ORDERS)]]
    assert execute_read_only(db, "SELECT * FROM nope").error_kind == "runtime_error"  # a failed query too
    assert execute_read_only(db, "SELECT COUNT(*) FROM orders").rows == [[len(ORDERS)]]
    assert len(connects) == 1 and invalidated == [] and set(checked_out) == set(connects)


NON_FINITE = {
    "sqlite": ("SELECT 1e999, -1e999", ["Infinity", "-Infinity"]),
    "duckdb": ("SELECT CAST('nan' AS DOUBLE), CAST('inf' AS DOUBLE), CAST('-inf' AS DOUBLE), 1.5",
               ["NaN", "Infinity", "-Infinity", 1.5]),
    "postgres": ("SELECT 'NaN'::float8, 'Infinity'::float8, '-Infinity'::float8, 'NaN'::numeric, "
                 "'Infinity'::numeric, 1.5::float8", ["NaN", "Infinity", "-Infinity", "NaN", "Infinity", 1.5]),
}


@pytest.mark.parametrize("engine", ENGINES)
def test_non_finite_floats_come_back_as_strings_json_can_carry(request, engine):
    sql, expected = NON_FINITE[engine]
    result = execute_read_only(open_shop(request, engine), sql)
    assert result.error is None and result.rows == [expected], result.error
    json.dumps(result.to_dict(), allow_nan=False)  # what Starlette's encoder does
