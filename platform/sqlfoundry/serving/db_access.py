"""The ingress's side of sqlfoundry.databases: which caller may see which database, and how a
database failure is answered over HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlfoundry.answering.vote import vote
from sqlfoundry.databases import Database, DatabaseError, Databases, QueryResult, run_candidate
from sqlfoundry.serving.api import ApiError
from sqlfoundry.sql.schema import Table

# Distinct candidates of one request run at once on its database: the request then takes about one
# timeout_s, not one per candidate, and one request holds at most this many of the pool's
# connections (databases.connect.POOL_SIZE); past the pool, a request waits up to timeout_s, then
# gets 503 busy with Retry-After.
PARALLEL_CANDIDATES = 2

# DatabaseError kind -> (status, OpenAI error type). A database that is down or refuses our
# credentials is the server's problem (503), not the caller's; the message names the database.
DATABASE_STATUS = {"unknown_database": (404, "not_found_error"), "config": (503, "database_error"),
                   "connect_failed": (503, "database_error"), "busy": (503, "overloaded_error"),
                   "query_failed": (502, "database_error")}


def bearer_token(headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def api_error(err: DatabaseError) -> ApiError:
    status, kind = DATABASE_STATUS.get(err.kind, (502, "database_error"))
    headers = {"Retry-After": "1"} if err.kind == "busy" else None
    return ApiError(status, err.message, "database", kind=kind, headers=headers)


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


def run_and_vote(db: Database, candidates: list[dict], max_rows: int | None,
                 tables: list[Table]) -> tuple[QueryResult, float | None]:
    """Execution-guided voting on the real database: every distinct candidate that passed the
    model replica's checks runs read-only on `db` (run_candidate: checked, transpiled, time limit,
    row cap), and the candidate whose rows most candidates return is the answer (ties to the
    greedy one, answering.vote). `candidates`: the replica's records, greedy first. Returns the
    chosen candidate's result and the vote's confidence (None: one candidate, nothing voted on).

    Rows past max_rows are not seen: two answers that agree on their first max_rows rows count as
    one. When nothing runs, the greedy candidate's own failure is the answer."""
    if len(candidates) == 1:
        return run_candidate(db, candidates[0]["sql"], max_rows, tables), None
    distinct = list(dict.fromkeys(c["sql"] for c in candidates if c["problem"] is None))
    outcomes: dict[str, QueryResult] = {}
    if distinct:
        with ThreadPoolExecutor(min(len(distinct), PARALLEL_CANDIDATES)) as pool:
            outcomes = dict(zip(distinct, pool.map(lambda sql: run_candidate(db, sql, max_rows, tables), distinct)))
    # One database, so each candidate's result is a list of one row set (vote compares per database).
    results = [[[tuple(row) for row in outcomes[c["sql"]].rows]]
               if c["sql"] in outcomes and outcomes[c["sql"]].error is None else None for c in candidates]
    chosen = vote(results)
    if chosen.winner is None:
        greedy = candidates[0]["sql"]
        return outcomes.get(greedy) or run_candidate(db, greedy, max_rows, tables), 0.0
    return outcomes[candidates[chosen.winner]["sql"]], chosen.confidence
