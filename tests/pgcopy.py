"""Copy a sqlite database into a PostgreSQL server as its owner would have built it: the same table
and column names (quoted, so their case survives), column types from the values they hold, the
primary keys the data satisfies, and the foreign keys (NOT VALID: Spider's data breaks some), with a
role that may only SELECT. The tests' mixed-case fixture and bench/db_accuracy.py (Spider's
databases in PostgreSQL) use it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from pgserver import ADMIN, ADMIN_PASSWORD


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_type(declared: str, values: list) -> str:
    """The declared type where every value fits it, else the narrowest type they all fit: sqlite's
    declarations do not bind its values ('' in an INTEGER column is common in Spider), and a column
    typed by its declaration alone would refuse them. Dates stay text, as sqlite stores them."""
    present = [v for v in values if v is not None]
    ints = all(isinstance(v, int) for v in present)
    numbers = all(isinstance(v, (int, float)) for v in present)
    declared = declared.upper()
    chars = re.fullmatch(r"N?(?:VAR)?CHAR2?\s*\(\s*(\d+)\s*\)", declared)
    if chars and all(isinstance(v, str) and len(v) <= int(chars.group(1)) for v in present):
        return f"VARCHAR({chars.group(1)})"
    if "INT" in declared and ints:
        return "INTEGER" if all(-2**31 <= v < 2**31 for v in present) else "BIGINT"
    if re.search(r"REAL|FLOA|DOUB|NUMERIC|DECIMAL|NUMBER", declared) and numbers:
        return "NUMERIC" if re.search(r"NUMERIC|DECIMAL|NUMBER", declared) else "DOUBLE PRECISION"
    if present and ints:
        return "BIGINT"
    if present and numbers:
        return "DOUBLE PRECISION"
    return "TEXT"


def _value(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def copy_sqlite(path: Path, server, dbname: str, reader: str, reader_password: str) -> dict:
    """Create database `dbname` on `server` holding the tables of the sqlite file `path`; returns
    what could not be carried over ({"primary_keys": [...], "foreign_keys": [...]}) so callers can
    report it. `reader` (created if missing) may only SELECT."""
    import psycopg

    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    source.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
    names = [row[0] for row in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    dsn = dict(host="127.0.0.1", port=server.port, user=ADMIN, password=ADMIN_PASSWORD)
    with psycopg.connect(dbname="postgres", autocommit=True, **dsn) as conn:
        conn.execute(f"CREATE DATABASE {_quote(dbname)}")
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (reader,)).fetchone():
            conn.execute(f"CREATE ROLE {_quote(reader)} LOGIN PASSWORD '{reader_password}'")
    skipped: dict[str, list[str]] = {"primary_keys": [], "foreign_keys": []}
    with psycopg.connect(dbname=dbname, autocommit=True, **dsn) as conn:
        for name in names:
            columns = source.execute(f"PRAGMA table_info({_quote(name)})").fetchall()  # cid, name, type, ..., pk
            rows = [tuple(_value(v) for v in row) for row in source.execute(f"SELECT * FROM {_quote(name)}")]
            types = [_pg_type(column[2] or "", [row[i] for row in rows]) for i, column in enumerate(columns)]
            conn.execute(f"CREATE TABLE {_quote(name)} ("
                         + ", ".join(f"{_quote(c[1])} {t}" for c, t in zip(columns, types)) + ")")
            with conn.cursor().copy(f"COPY {_quote(name)} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            key = [c[1] for c in sorted(columns, key=lambda c: c[5]) if c[5]]
            if key:
                try:
                    conn.execute(f"ALTER TABLE {_quote(name)} ADD PRIMARY KEY ({', '.join(map(_quote, key))})")
                except psycopg.Error:  # duplicate or NULL keys in the data
                    skipped["primary_keys"].append(name)
        for name in names:
            for fk in _foreign_keys(source, name):
                columns, table, references = fk
                try:
                    conn.execute(f"ALTER TABLE {_quote(name)} ADD FOREIGN KEY ({', '.join(map(_quote, columns))}) "
                                 f"REFERENCES {_quote(table)} ({', '.join(map(_quote, references))}) NOT VALID")
                except psycopg.Error:  # the referenced columns are not a key there, or not there at all
                    skipped["foreign_keys"].append(f"{name} -> {table}")
        conn.execute(f"GRANT CONNECT ON DATABASE {_quote(dbname)} TO {_quote(reader)}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {_quote(reader)}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {_quote(reader)}")
    source.close()
    return skipped


def _foreign_keys(source: sqlite3.Connection, table: str) -> list[tuple[list[str], str, list[str]]]:
    """(columns, referenced table, referenced columns) per foreign key; a key naming no referenced
    column means the referenced table's primary key."""
    keys: dict[int, tuple[list[str], str, list[str]]] = {}
    for row in source.execute(f"PRAGMA foreign_key_list({_quote(table)})").fetchall():
        number, _, target, column, reference = row[:5]
        entry = keys.setdefault(number, ([], target, []))
        entry[0].append(column)
        if reference:
            entry[2].append(reference)
    resolved = []
    for columns, target, references in keys.values():
        target_columns = source.execute(f"PRAGMA table_info({_quote(target)})").fetchall()
        if not references:
            references = [c[1] for c in sorted(target_columns, key=lambda c: c[5]) if c[5]]
        # sqlite matches names in any case; PostgreSQL needs the referenced table's own spelling.
        spelled = {c[1].lower(): c[1] for c in target_columns}
        references = [spelled.get(r.lower(), r) for r in references]
        # sqlite keeps a foreign key to a table that does not exist, or with its name in another case.
        exact = source.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND lower(name) = lower(?)",
                               (target,)).fetchone()
        if exact and len(references) == len(columns):
            resolved.append((columns, exact[0], references))
    return resolved
