"""Static checks of one SQL statement: parses, is a single read-only query, names real tables/columns.

Used by evaluation (a failed prediction gets a reason) and by serving (`valid`). The read-only check
is an allow-list of statement types, so anything sqlglot does not recognize as a query fails, and
of functions (`sql.functions`), so a query that sleeps, loads code or reads files fails too.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify

from sqlfoundry.sql.functions import unsafe_function
from sqlfoundry.sql.schema import Table

# sqlglot warns on every statement it falls back to parsing as a Command; we report those ourselves.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

READ_ONLY_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)
WRITE_NODES = (exp.Insert, exp.Update, exp.Delete, exp.Drop, exp.Create, exp.Alter, exp.Pragma,
               exp.Attach, exp.Detach, exp.Command, exp.Merge, exp.TruncateTable)


@dataclass(frozen=True)
class SqlCheck:
    ok: bool
    # no_sql | parse_error | not_read_only | unsafe_function | unknown_table | unknown_column
    reason: str | None = None
    detail: str = ""
    tree: exp.Expression | None = None


def parse_single(sql: str, dialect: str = "sqlite") -> SqlCheck:
    if not sql or not sql.strip():
        return SqlCheck(False, "no_sql", "empty query")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as err:
        return SqlCheck(False, "parse_error", str(err).splitlines()[0][:200])
    if len(statements) != 1:
        return SqlCheck(False, "not_read_only", f"expected one statement, got {len(statements)}")
    return SqlCheck(True, tree=statements[0])


def check_read_only(sql: str, dialect: str = "sqlite") -> SqlCheck:
    parsed = parse_single(sql, dialect)
    if not parsed.ok:
        return parsed
    tree = parsed.tree
    if not isinstance(tree, READ_ONLY_ROOTS):
        return SqlCheck(False, "not_read_only", f"{type(tree).__name__.upper()} statements are not allowed")
    writer = tree.find(*WRITE_NODES)
    if writer is not None:
        return SqlCheck(False, "not_read_only", f"contains {type(writer).__name__.upper()}")
    # FOR UPDATE/SHARE takes row locks and SELECT ... INTO stores the result: a SELECT that writes.
    lock = tree.find(exp.Lock)
    if lock is not None:  # spelled as postgres does: sqlite's and sqlglot's default generators drop it
        return SqlCheck(False, "not_read_only", f"locking clause {lock.sql(dialect='postgres').strip()}")
    into = tree.find(exp.Into)
    if into is not None:
        target = into.this.sql(dialect=dialect)
        return SqlCheck(False, "not_read_only", f"SELECT ... INTO {target} stores the result")
    for func in tree.find_all(exp.Func):
        problem = unsafe_function(func, dialect)
        if problem is not None:
            return SqlCheck(False, "unsafe_function", problem)
    return parsed


def _known_names(tables: list[Table]) -> tuple[set[str], set[str]]:
    table_names = {t.name.lower() for t in tables}
    column_names = {c.name.lower() for t in tables for c in t.columns}
    return table_names, column_names


def quoted_strings_to_literals(tree: exp.Expression, known_columns: set[str]) -> exp.Expression:
    """SQLite's reading of `"France"`: a double-quoted name that is no column (of `known_columns`,
    lower case) nor an alias the query defines is a string literal. Made explicit before the tree is
    compared or written in another dialect, where "France" would be a column that does not exist."""
    defined = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for column in list(tree.find_all(exp.Column)):
        identifier = column.this
        if (isinstance(identifier, exp.Identifier) and identifier.quoted and not column.table
                and column.name.lower() not in known_columns and column.name.lower() not in defined):
            column.replace(exp.Literal.string(column.name))
    return tree


def check_query(sql: str, tables: list[Table], dialect: str = "sqlite") -> SqlCheck:
    """Read-only check plus: every table and column the query names exists in `tables`."""
    checked = check_read_only(sql, dialect)
    if not checked.ok:
        return checked
    tree = checked.tree
    known_tables, known_columns = _known_names(tables)
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if name and name not in known_tables and name not in cte_names:
            return SqlCheck(False, "unknown_table", f"no table named {table.name}", tree)
    # Names a query defines itself: select aliases, CTE columns, subquery aliases.
    defined = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for cte in tree.find_all(exp.CTE):
        alias = cte.args.get("alias")
        defined |= {c.name.lower() for c in (alias.columns if alias else [])}
    for column in tree.find_all(exp.Column):
        name = column.name.lower()
        if not name or name == "*" or name in known_columns or name in defined:
            continue
        identifier = column.this
        if isinstance(identifier, exp.Identifier) and identifier.quoted and not column.table:
            continue  # sqlite reads an unknown "double-quoted" name as a string literal
        return SqlCheck(False, "unknown_column", f"no column named {column.name}", tree)
    if dialect == "sqlite":  # other dialects: the transpilation of SQLite SQL checked here first
        problem = _column_out_of_scope(tree, tables, known_columns)
        if problem:
            return SqlCheck(False, "unknown_column", problem, tree)
    return checked


def _column_out_of_scope(tree: exp.Expression, tables: list[Table], known_columns: set[str]) -> str | None:
    """A column of the schema used where the query does not read its table (`SELECT rating FROM
    artist`, rating being a column of song), or unresolved between the tables it reads: SQLite
    refuses both when it runs the query, so they are not valid answers."""
    return sqlite_literals(tree, tables, known_columns)[1]


def sqlite_literals(tree: exp.Expression, tables: list[Table],
                    known_columns: set[str] | None = None) -> tuple[exp.Expression, str | None]:
    """A copy of `tree` with SQLite's double-quoted strings made literals as SQLite reads them (a
    "name" that no table the query reads has as a column, in that scope), and the first column
    the qualifier cannot place in the tables the query reads (None: all placed, or no verdict).

    sqlglot's qualifier resolves each column in its scope (joins, subqueries, CTEs, aliases); it
    accepts every one of the 8,562 gold queries of Spider's training split that run on their
    databases (bench/validator_gold.py). Anything it trips on gets no verdict: this may miss a
    problem, never invent one. Other dialects need the literals explicit before transpiling."""
    if known_columns is None:
        known_columns = {c.lower() for t in tables for c in t.column_names}
    schema = {t.name.lower(): {c.lower(): "TEXT" for c in t.column_names} for t in tables}
    tree = quoted_strings_to_literals(tree.copy(), known_columns)
    for _ in range(8):
        try:
            qualify(tree.copy(), schema=schema, dialect="sqlite", validate_qualify_columns=True,
                    quote_identifiers=False, identify=False)
            return tree, None
        except OptimizeError as err:
            message = re.sub(r"\.? Line: \d+, Col: \d+\.?", "", str(err).splitlines()[0])
            named = re.match(r"(?:Unknown column: |Column ')([^' ]+)", message)
            if not named:
                return tree, None
            # "winner" is a string when no table the query reads has that column, even if
            # another table of the schema does.
            strings = [c for c in tree.find_all(exp.Column) if not c.table and isinstance(c.this, exp.Identifier)
                       and c.this.quoted and c.name.lower() == named.group(1).lower()]
            if not strings:
                name = named.group(1)
                if message.startswith("Unknown column"):
                    return tree, f"no column named {name} in the table it is qualified with"
                return tree, (f"no column named {name} in the tables the query reads, or more than one has "
                              "it (qualify it with its table)")
            for column in strings:
                column.replace(exp.Literal.string(column.name))
        except Exception:  # a construct the qualifier does not handle: no verdict
            return tree, None
    return tree, None
