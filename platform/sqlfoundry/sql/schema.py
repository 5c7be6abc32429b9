"""Parse the CREATE TABLE context of a text-to-SQL row into tables and typed columns (sqlglot), and
render tables back into that form."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError


class SchemaError(ValueError):
    """The context is not a list of CREATE TABLE statements."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # upper-case sqlglot type name, e.g. VARCHAR, INT for INTEGER ("" when untyped)


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str  # the referenced table
    references: tuple[str, ...]  # its columns


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _reference(reference: exp.Reference, columns: tuple[str, ...]) -> ForeignKey:
    target = reference.this  # Schema(Table, [columns]) or a bare Table
    table = target.this if isinstance(target, exp.Schema) else target
    names = tuple(i.name for i in target.expressions) if isinstance(target, exp.Schema) else ()
    return ForeignKey(columns, table.name, names)


def _keys(schema: exp.Schema) -> tuple[tuple[str, ...], tuple[ForeignKey, ...]]:
    """PRIMARY KEY / FOREIGN KEY ... REFERENCES, as table lines or as column constraints."""
    primary: list[str] = []
    foreign: list[ForeignKey] = []
    for item in schema.expressions:
        if isinstance(item, exp.PrimaryKey):
            primary += [e.name for e in item.expressions]
        elif isinstance(item, exp.ForeignKey) and item.args.get("reference"):
            foreign.append(_reference(item.args["reference"], tuple(e.name for e in item.expressions)))
        elif isinstance(item, exp.ColumnDef):
            for constraint in item.constraints:
                if isinstance(constraint.kind, exp.PrimaryKeyColumnConstraint):
                    primary.append(item.name)
                elif isinstance(constraint.kind, exp.Reference):
                    foreign.append(_reference(constraint.kind, (item.name,)))
    return tuple(primary), tuple(foreign)


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
        primary_key, foreign_keys = _keys(schema)
        tables.append(Table(schema.this.name, columns, primary_key, foreign_keys))
    return tables


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# parse_schema keeps sqlglot's canonical type names; write them back the way sql-create-context
# (and SQLite DDL generally) spells them, so rendered rows look like the rest of the data.
_TYPE_SPELLING = {"INT": "INTEGER", "DOUBLE": "REAL"}


def _name(name: str) -> str:
    return name if _PLAIN_NAME.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(_name(n) for n in names)


def render_table(table: Table) -> str:
    parts = [f"{_name(c.name)} {_TYPE_SPELLING.get(c.type, c.type)}".rstrip() for c in table.columns]
    if table.primary_key:
        parts.append(f"PRIMARY KEY ({_names(table.primary_key)})")
    parts += [f"FOREIGN KEY ({_names(fk.columns)}) REFERENCES {_name(fk.table)} ({_names(fk.references)})"
              for fk in table.foreign_keys]
    return f"CREATE TABLE {_name(table.name)} (" + ", ".join(parts) + ")"


def render_schema(tables: list[Table], separator: str = "; ") -> str:
    """CREATE TABLE statements in sql-create-context's style: `CREATE TABLE t (col TYPE, ...)`, joined
    by "; " (the dataset's separator), key lines last inside each statement."""
    return separator.join(render_table(table) for table in tables)
