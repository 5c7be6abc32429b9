"""Execution-guided voting on a real database (/v1/query with candidates): the model replica only
checks the candidates, the ingress runs them on the database and votes on their rows
(serving.db_access.run_and_vote). The same table of cases on sqlite, DuckDB and PostgreSQL."""

import pytest

from shopdb import CUSTOMERS, ORDERS, open_shop

from sqlfoundry.serving.db_access import run_and_vote

ENGINES = ["sqlite", "duckdb", "postgres"]
COUNT = "SELECT COUNT(*) FROM orders"
COUNT_STAR_AGAIN = "SELECT COUNT(id) FROM orders"  # another spelling of the same answer
JAPAN = "SELECT COUNT(*) FROM customers WHERE country = 'Japan'"
UNKNOWN = "SELECT COUNT(*) FROM shipments"  # passes the replica's checks only if they were skipped
SLOW = {
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n",
    "duckdb": "SELECT COUNT(*) FROM orders AS a, orders AS b, orders AS c, orders AS d, orders AS e, orders AS f",
    "postgres": "SELECT COUNT(*) FROM orders AS a, orders AS b, orders AS c, orders AS d, orders AS e, orders AS f",
}
ORDER_COUNT, JAPAN_COUNT = [[len(ORDERS)]], [[sum(1 for _, _, country in CUSTOMERS if country == "Japan")]]


def candidate(sql: str, problem: str | None = None, greedy: bool = False) -> dict:
    return {"sql": sql, "greedy": greedy, "problem": problem, "group": None, "repair": False}


def candidates(*specs) -> list[dict]:
    """(sql, problem) or sql per candidate; the first is the greedy one."""
    rows = [spec if isinstance(spec, tuple) else (spec, None) for spec in specs]
    return [candidate(sql, problem, greedy=i == 0) for i, (sql, problem) in enumerate(rows)]


# (case, candidates, the SQL chosen, its rows, confidence)
CASES = [
    ("one candidate is run, nothing voted on", candidates(JAPAN), JAPAN, JAPAN_COUNT, None),
    ("the majority of rows wins over the greedy one", candidates(JAPAN, COUNT, COUNT_STAR_AGAIN),
     COUNT, ORDER_COUNT, 2 / 3),
    ("a tie goes to the greedy candidate", candidates(JAPAN, COUNT), JAPAN, JAPAN_COUNT, 1 / 2),
    ("a candidate the replica refused is not run", candidates((COUNT, "unknown_column: x"), JAPAN),
     JAPAN, JAPAN_COUNT, 1 / 2),
    # the replica's record says it passed; run_candidate's own check against the database refuses it
    ("one the database side refuses does not vote", candidates(UNKNOWN, UNKNOWN, JAPAN), JAPAN, JAPAN_COUNT,
     1 / 3),
    ("nothing runs: the greedy candidate's own failure", candidates((UNKNOWN, "unknown_table: shipments"),
                                                                    (JAPAN, "syntax: y")), UNKNOWN, [], 0.0),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case, given, chosen, rows, confidence", CASES, ids=[c[0] for c in CASES])
def test_candidates_are_voted_on_by_their_rows_in_the_database(request, engine, case, given, chosen, rows,
                                                                 confidence):
    db = open_shop(request, engine)
    result, got = run_and_vote(db, given, None, db.schema().tables)
    assert got == pytest.approx(confidence) if confidence is not None else got is None
    assert result.rows == rows
    if rows:
        assert result.error is None and result.valid
        assert ("japan" in result.sql.lower()) == (chosen == JAPAN)
    else:
        assert result.error and "shipments" in result.error


@pytest.mark.parametrize("engine", ENGINES)
def test_a_candidate_past_the_time_limit_loses_and_the_others_still_answer_in_time(request, engine):
    import time

    db = open_shop(request, engine, timeout_s=0.5)
    given = candidates(SLOW[engine], COUNT, JAPAN)
    started = time.monotonic()
    result, confidence = run_and_vote(db, given, None, db.schema().tables)
    assert time.monotonic() - started < 10  # cancelled at timeout_s, not run to its end (generous bound)
    # The slow greedy one times out; the other two disagree, so the tie goes to the earlier one.
    assert result.rows == ORDER_COUNT and confidence == pytest.approx(1 / 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_rows_past_max_rows_are_not_seen_by_the_vote(request, engine):
    """Two answers that agree on the first max_rows rows count as one (documented in run_and_vote)."""
    db = open_shop(request, engine)
    given = candidates("SELECT id FROM orders ORDER BY id", "SELECT id FROM orders WHERE id < 50 ORDER BY id")
    result, confidence = run_and_vote(db, given, 3, db.schema().tables)
    assert confidence == 1.0 and result.rows == [[1], [2], [3]] and result.truncated


def test_a_full_pool_is_busy_503_after_timeout_s_not_a_connect_failure(request):
    """Every pooled PostgreSQL connection taken: the next query waits at most timeout_s for one,
    then fails as busy (serving: 503 + Retry-After), never as 'cannot connect' after SQLAlchemy's 30 s."""
    import time

    from sqlfoundry.databases import DatabaseError
    from sqlfoundry.databases.connect import POOL_OVERFLOW, POOL_SIZE
    from sqlfoundry.serving.db_access import api_error

    db = open_shop(request, "postgres", timeout_s=0.5)
    held = [db.connect() for _ in range(POOL_SIZE + POOL_OVERFLOW)]
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseError) as err:
            run_and_vote(db, candidates(COUNT, JAPAN), None, db.schema().tables)
        assert err.value.kind == "busy" and time.monotonic() - started < 5
        answer = api_error(err.value)
        assert answer.status == 503 and answer.headers["Retry-After"] and "'shop'" in answer.message
    finally:
        for conn in held:
            conn.close()
    assert run_and_vote(db, candidates(COUNT, JAPAN), None, db.schema().tables)[0].rows == ORDER_COUNT  # tie: greedy
