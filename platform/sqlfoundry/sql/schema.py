"""Parse the CREATE TABLE context of a text-to-SQL row into tables and typed columns (sqlglot)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError


class SchemaError(ValueError):
    """The context is not a list of CREATE TABLE statements."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # upper-case SQL type as written, e.g. VARCHAR, INTEGER ("" when untyped)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def parse_schema(context: str) -> list[Table]:
    """Parse `context`; raise SchemaError unless it is one or more CREATE TABLE statements."""
    if not context or not context.strip():
        raise SchemaError("empty schema")
    try:
        statements = [s for s in sqlglot.parse(context, read="sqlite") if s is not None]
    except SqlglotError as err:
        raise SchemaError(f"schema does not parse: {str(err).splitlines()[0]}") from None
    if not statements:
        raise SchemaError("empty schema")
    tables = []
    for statement in statements:
        if not isinstance(statement, exp.Create) or statement.kind != "TABLE":
            raise SchemaError(f"only CREATE TABLE statements are allowed, got: {statement.sql()[:80]}")
        schema = statement.this
        if not isinstance(schema, exp.Schema):
            raise SchemaError(f"CREATE TABLE without a column list: {statement.sql()[:80]}")
        columns = tuple(
            Column(name=col.name, type=(col.args["kind"].sql().upper() if col.args.get("kind") else ""))
            for col in schema.expressions
            if isinstance(col, exp.ColumnDef)
        )
        if not columns:
            raise SchemaError(f"table {schema.this.name} has no columns")
        tables.append(Table(name=schema.this.name, columns=columns))
    return tables
