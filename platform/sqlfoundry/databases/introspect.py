"""Read a database's schema with SQLAlchemy's inspector into `sql.schema.Table`s and render it with
`sql.schema.render_schema`, the function that renders training data, so the model is prompted with
the CREATE TABLE form it was trained on."""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlfoundry.sql.schema import Column, ForeignKey, Table, render_schema

log = logging.getLogger(__name__)
SAMPLE_CHARS = 60  # the most characters of one sample value shown to the model


def _type_name(sa_type, dialect: str) -> str:
    """sqlglot's canonical spelling (as `parse_schema` keeps it), so INT/INTEGER, TEXT/VARCHAR read
    the same from every engine as from training rows."""
    try:
        text = sa_type.compile()
    except Exception:  # a type the dialect cannot compile (exotic extensions)
        text = type(sa_type).__name__
    try:
        return exp.DataType.build(text, dialect=dialect).sql().upper()
    except (SqlglotError, ValueError):
        return text.upper()


def _duckdb_keys(conn) -> tuple[dict[str, tuple[str, ...]], dict[str, list[ForeignKey]]]:
    """duckdb-engine's inspector cannot reflect keys (its PostgreSQL catalog queries fail on DuckDB,
    duckdb_engine issue 594), so they come from DuckDB's own catalog function."""
    primary: dict[str, tuple[str, ...]] = {}
    foreign: dict[str, list[ForeignKey]] = {}
    rows = conn.exec_driver_sql(
        "SELECT table_name, constraint_type, constraint_column_names, referenced_table, referenced_column_names "
        "FROM duckdb_constraints() WHERE schema_name = current_schema() "
        "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') ORDER BY table_name, constraint_index")
    for table, kind, columns, referenced, references in rows:
        if kind == "PRIMARY KEY":
            primary[table] = tuple(columns)
        else:
            foreign.setdefault(table, []).append(ForeignKey(tuple(columns), referenced, tuple(references)))
    return primary, foreign


def _samples(conn, table: str, columns: list[dict], limit: int) -> dict[str, list]:
    """Up to `limit` distinct non-null values of each text column (they show the model how literals
    are spelled: 'USA' or 'United States')."""
    found = {}
    for column in columns:
        if not isinstance(column["type"], sa.String):
            continue
        name = sa.column(column["name"])
        query = sa.select(name).select_from(sa.table(table)).where(name.is_not(None)).distinct() \
            .order_by(name).limit(limit)
        values = [row[0] for row in conn.execute(query)]
        if values:
            found[column["name"]] = values
    return found


def one_line(value, limit: int = SAMPLE_CHARS) -> str:
    """`value` on one line: a newline (or any control character) in stored data would end the `--`
    comment, and what follows would read as SQL (an extra CREATE TABLE) to the model and to parsers."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return " ".join(text.split())[:limit]


def render_samples(samples: dict[str, dict[str, list]]) -> str:
    """Sample values as SQL comments after the CREATE TABLE statements: the statements stay exactly
    the training format, and the comments are still valid SQL for anything that parses the text."""
    lines = []
    for table, columns in samples.items():
        for column, values in columns.items():
            shown = ", ".join("'" + one_line(v).replace("'", "''") + "'" for v in values)
            lines.append(f"-- {one_line(table, 200)}.{one_line(column, 200)} values: {shown}")
    return "\n".join(lines)


def _selectable(conn, names: list[str]) -> set[str]:
    """The PostgreSQL tables of the current schema this role may SELECT: the inspector lists every
    table, and one the role cannot read would make the model write queries that fail."""
    rows = conn.execute(sa.text(
        "SELECT t FROM unnest(CAST(:names AS text[])) AS t "
        "WHERE has_table_privilege(current_user, format('%I.%I', current_schema(), t), 'SELECT')"),
        {"names": names})
    return {row[0] for row in rows}


def _samples_or_none(conn, db, name: str, columns: list[dict]) -> dict[str, list]:
    """One table's sample values, or none when reading them fails (a row policy, statement_timeout):
    on PostgreSQL inside a savepoint, so the failure does not abort the snapshot's transaction."""
    try:
        if db.config.backend == "postgresql":
            with conn.begin_nested():
                return _samples(conn, name, columns, db.config.sample_values)
        return _samples(conn, name, columns, db.config.sample_values)
    except Exception as err:
        from sqlfoundry.databases.connect import driver_message

        log.warning("database %r: no sample values for table %r: %s", db.name, name,
                    db.scrub(driver_message(err)))
        if db.config.backend == "duckdb":
            conn.rollback()  # DuckDB aborts the whole transaction on an error
        return {}


def read_schema(db):
    """A fresh SchemaSnapshot of `db` (tables of the default schema, sorted by name)."""
    from sqlfoundry.databases.connect import DatabaseError, SchemaSnapshot

    with db.connect() as conn:
        try:
            inspector = sa.inspect(conn)
            keys = _duckdb_keys(conn) if db.config.backend == "duckdb" else None
            tables, samples = [], {}
            names = sorted(inspector.get_table_names())
            if db.config.backend == "postgresql" and names:
                allowed = _selectable(conn, names)
                names = [name for name in names if name in allowed]
            for name in names:
                columns = inspector.get_columns(name)
                if keys is not None:
                    primary, foreign = keys[0].get(name, ()), tuple(keys[1].get(name, []))
                else:
                    primary = tuple(inspector.get_pk_constraint(name).get("constrained_columns") or ())
                    foreign = tuple(ForeignKey(tuple(fk["constrained_columns"]), fk["referred_table"],
                                               tuple(fk["referred_columns"]))
                                    for fk in inspector.get_foreign_keys(name))
                tables.append(Table(name, tuple(Column(c["name"], _type_name(c["type"], db.dialect))
                                                for c in columns), primary, foreign))
                if db.config.sample_values:
                    found = _samples_or_none(conn, db, name, columns)
                    if found:
                        samples[name] = found
            schema_name = inspector.default_schema_name
        except Exception as err:
            raise db.failure("query_failed", "cannot read the schema", err) from None
        finally:
            conn.rollback()
    if not tables:
        raise DatabaseError("query_failed", f"database {db.name!r} has no tables this role can see")
    text = render_schema(tables)
    if samples:
        text += "\n" + render_samples(samples)
    return SchemaSnapshot(tables, samples, text, time.monotonic(), schema_name)
