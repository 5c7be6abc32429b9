"""The ingress's side of sqlfoundry.databases: which caller may see which database, and how a
database failure is answered over HTTP."""

from __future__ import annotations

from sqlfoundry.databases import Database, DatabaseError, Databases
from sqlfoundry.serving.api import ApiError

# DatabaseError kind -> (status, OpenAI error type). A database that is down or refuses our
# credentials is the server's problem (503), not the caller's; the message names the database.
DATABASE_STATUS = {"unknown_database": (404, "not_found_error"), "config": (503, "database_error"),
                   "connect_failed": (503, "database_error"), "query_failed": (502, "database_error")}


def bearer_token(headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def api_error(err: DatabaseError) -> ApiError:
    status, kind = DATABASE_STATUS.get(err.kind, (502, "database_error"))
    return ApiError(status, err.message, "database", kind=kind)


def database_for(databases: Databases, name: str, headers) -> Database:
    """The database `name` for this caller, or 404 whether it does not exist or the key may not use it."""
    try:
        return databases.get(name, bearer_token(headers))
    except DatabaseError as err:
        raise api_error(err) from None


def listing(databases: Databases, headers) -> dict:
    return {"object": "list", "data": [{"name": db.name, "dialect": db.dialect, "max_rows": db.config.max_rows,
                                        "timeout_s": db.config.timeout_s}
                                       for db in databases.visible(bearer_token(headers))]}
