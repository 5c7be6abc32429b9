"""The fixture database of the real-database tests, the same tables and rows on sqlite, DuckDB and
PostgreSQL: customers and orders with a primary key each and a foreign key between them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

DDL = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, country VARCHAR(30))",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, amount DECIMAL(10, 2), "
    "placed DATE, FOREIGN KEY (customer_id) REFERENCES customers (id))",
]
COUNTRIES = ["France", "Japan", "USA"]
CUSTOMERS = [(i, f"customer {i:02d}", COUNTRIES[i % 3]) for i in range(1, 13)]
ORDERS = [(i, 1 + i % 12, f"{i * 2.5:.2f}", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}") for i in range(1, 61)]
READER, READER_PASSWORD = "reader", "reader-pw-Zk93"


def _fill(execute) -> None:
    for statement in DDL:
        execute(statement)
    for row in CUSTOMERS:
        execute("INSERT INTO customers VALUES (%d, '%s', '%s')" % row)
    for row in ORDERS:
        execute("INSERT INTO orders VALUES (%d, %d, %s, '%s')" % row)


def build_sqlite(path: Path) -> str:
    conn = sqlite3.connect(path)
    _fill(conn.execute)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def build_duckdb(path: Path) -> str:
    import duckdb

    conn = duckdb.connect(str(path))
    _fill(conn.execute)
    conn.close()
    return f"duckdb:///{path}"


def build_postgres(server) -> str:
    """Database `shop` owned by the admin, and role `reader` that may only SELECT it."""
    import psycopg

    from pgserver import ADMIN, ADMIN_PASSWORD

    dsn = dict(host="127.0.0.1", port=server.port, user=ADMIN, password=ADMIN_PASSWORD)
    with psycopg.connect(dbname="postgres", autocommit=True, **dsn) as conn:
        conn.execute("CREATE DATABASE shop")
        conn.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'")
    with psycopg.connect(dbname="shop", **dsn) as conn:
        _fill(conn.execute)
        conn.execute(f"GRANT CONNECT ON DATABASE shop TO {READER}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {READER}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")
    return server.url(READER, "shop")


def shop_settings(request, engine: str, owner: bool = False) -> dict:
    """{url, password_env, env} of the shop database on `engine` (the owner's role with owner=True);
    `request`: a test's pytest request, for the session fixtures (conftest.py) that build it."""
    from conftest import PG_ADMIN_ENV, PG_READER_ENV

    if engine == "postgres":
        pg = request.getfixturevalue("shop_postgres")
        return {"url": pg["admin_url"] if owner else pg["url"],
                "password_env": PG_ADMIN_ENV if owner else PG_READER_ENV, "env": pg["env"]}
    return {"url": request.getfixturevalue("shop_files")[engine], "password_env": None, "env": {}}


def open_shop(request, engine: str, owner: bool = False, **settings):
    from sqlfoundry.databases import Database, DatabaseConfig

    shop = shop_settings(request, engine, owner)
    config = DatabaseConfig(url=shop["url"], password_env=shop["password_env"], **settings)
    return Database("shop", config, shop["env"])
