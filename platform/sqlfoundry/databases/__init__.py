"""Real databases: typed connection config, read-only SQLAlchemy engines pooled per process, schema
introspection (rendered with `sql.schema.render_schema`, as in training) and read-only execution of
generated SQL. No Ray here: serving and the CLI put it behind HTTP and a command."""

from sqlfoundry.databases.config import DatabaseConfig
from sqlfoundry.databases.connect import Database, DatabaseError, Databases
from sqlfoundry.databases.execute import QueryResult, execute_read_only, prepare_sql, run_candidate

__all__ = ["Database", "DatabaseConfig", "DatabaseError", "Databases", "QueryResult", "execute_read_only",
           "prepare_sql", "run_candidate"]
