"""Score one prediction against gold: exact match, canonical match, execution accuracy and a reason.

Schema-only examples run on K synthesized databases (strict, and with case-insensitive text);
real databases (Spider layout) are opened read-only. Examples whose gold query fails, or returns
the same result on every synthesized database, get their own category instead of counting as
right or wrong.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass

from sqlfoundry.sql.schema import SchemaError, Table, parse_schema
from sqlfoundry.sql.compare import canonical_match, exact_match
from sqlfoundry.sql.execute import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, open_read_only, results_match, run_query
from sqlfoundry.evaluation.hardness import hardness
from sqlfoundry.sql.validate import SqlCheck, check_query, check_read_only
from sqlfoundry.sql.synthdb import build_databases

SCORED, GOLD_ERROR, GOLD_CONSTANT, BAD_SCHEMA = "scored", "gold_error", "gold_constant", "bad_schema"


@dataclass
class Score:
    em: bool
    em_canonical: bool
    ex: bool | None  # strict execution accuracy (None when the example cannot be scored)
    ex_nocase: bool | None  # with case-insensitive string comparison (schema-only examples)
    category: str  # scored | gold_error | gold_constant | bad_schema
    reason: str | None  # why the prediction is wrong; None when correct or not scored
    detail: str = ""
    hardness: str | None = None
    build_s: float = 0.0
    exec_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_rows: int = DEFAULT_MAX_ROWS


def _ordered(gold_tree) -> bool:
    return gold_tree is not None and bool(gold_tree.args.get("order"))


def _prediction_problem(prediction: str, tables: list[Table]):
    check = check_query(prediction, tables)
    if check.ok:
        return None, ""
    reason = "unknown_table_or_column" if check.reason in ("unknown_table", "unknown_column") else check.reason
    return reason, check.detail


def _run_on(conns, sql: str, limits: Limits):
    results = [run_query(conn, sql, limits.timeout_s, limits.max_rows) for conn in conns]
    return results, sum(r.seconds for r in results)


def _execution_verdict(gold_results, predicted_results, ordered: bool) -> tuple[bool, str | None, str]:
    for result in predicted_results:
        if not result.ok:
            reason = "timeout" if result.error == "timeout" else "runtime_error"
            return False, reason, result.detail
    for gold, predicted in zip(gold_results, predicted_results):
        if not results_match(gold.rows, predicted.rows, ordered):
            return False, "wrong_result", ""
    return True, None, ""


@dataclass
class _StaticChecks:
    """What both scorers learn without executing anything; `early` is set when scoring stops here."""
    tables: list[Table]
    em: bool
    em_canonical: bool
    gold_check: SqlCheck | None
    early: Score | None


def _static_checks(schema: str, gold: str, prediction: str, level: str | None = None) -> _StaticChecks:
    try:
        tables = parse_schema(schema)
    except SchemaError as err:
        return _StaticChecks([], False, False, None, Score(False, False, None, None, BAD_SCHEMA, None, str(err)))
    known = {c.name.lower() for t in tables for c in t.columns}
    em, em_canonical = exact_match(prediction, gold), canonical_match(prediction, gold, known)
    gold_check = check_read_only(gold)
    early = None if gold_check.ok else Score(em, em_canonical, None, None, GOLD_ERROR, None,
                                             f"gold: {gold_check.detail}", level)
    return _StaticChecks(tables, em, em_canonical, gold_check, early)


def score_schema_only(context: str, gold: str, prediction: str, k: int = 3, seed: int = 0,
                      limits: Limits = Limits()) -> Score:
    static = _static_checks(context, gold, prediction)
    if static.early:
        return static.early
    tables, em, em_canonical, gold_check = static.tables, static.em, static.em_canonical, static.gold_check
    start = time.perf_counter()
    try:
        strict = build_databases(tables, [gold, prediction], k, seed)
        nocase = build_databases(tables, [gold, prediction], k, seed, nocase=True)
    except (sqlite3.Error, OverflowError) as err:  # a schema or value sqlite cannot hold: reported, never
        return Score(em, em_canonical, None, None, BAD_SCHEMA, None, f"sqlite: {err}")  # a crash of the run
    build_s = time.perf_counter() - start
    try:
        gold_strict, exec_s = _run_on(strict, gold, limits)
        gold_nocase, more = _run_on(nocase, gold, limits)
        exec_s += more
        failed = next((r for r in gold_strict + gold_nocase if not r.ok), None)
        if failed is not None:
            return Score(em, em_canonical, None, None, GOLD_ERROR, None, f"gold: {failed.error} {failed.detail}",
                         build_s=build_s, exec_s=exec_s)
        ordered = _ordered(gold_check.tree)
        constant = k > 1 and all(results_match(gold_strict[0].rows, r.rows, ordered) for r in gold_strict[1:])
        category = GOLD_CONSTANT if constant else SCORED
        reason, detail = _prediction_problem(prediction, tables)
        if reason is not None:
            return Score(em, em_canonical, False, False, category, reason, detail, build_s=build_s, exec_s=exec_s)
        predicted_strict, more = _run_on(strict, prediction, limits)
        predicted_nocase, more2 = _run_on(nocase, prediction, limits)
        exec_s += more + more2
        ex, reason, detail = _execution_verdict(gold_strict, predicted_strict, ordered)
        ex_nocase, _, _ = _execution_verdict(gold_nocase, predicted_nocase, ordered)
        return Score(em, em_canonical, ex, ex_nocase, category, reason, detail, build_s=build_s, exec_s=exec_s)
    finally:
        for conn in strict + nocase:
            conn.close()


def database_schema(db_path: str) -> str:
    """The database's own CREATE TABLE statements, the prompt schema for real-database examples."""
    conn = open_read_only(db_path)
    try:
        rows = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    finally:
        conn.close()
    return ";\n".join(" ".join(sql.split()) for (sql,) in rows)


def score_real_db(db_path: str, gold: str, prediction: str, limits: Limits = Limits(),
                  schema: str | None = None) -> Score:
    schema = schema if schema is not None else database_schema(db_path)
    level = hardness(gold)
    static = _static_checks(schema, gold, prediction, level)
    if static.early:
        return static.early
    tables, em, em_canonical, gold_check = static.tables, static.em, static.em_canonical, static.gold_check
    conn = open_read_only(db_path)
    try:
        [gold_result], exec_s = _run_on([conn], gold, limits)
        if not gold_result.ok:
            return Score(em, em_canonical, None, None, GOLD_ERROR, None, f"gold: {gold_result.error}", level,
                         exec_s=exec_s)
        reason, detail = _prediction_problem(prediction, tables)
        if reason is not None:
            return Score(em, em_canonical, False, None, SCORED, reason, detail, level, exec_s=exec_s)
        predicted, more = _run_on([conn], prediction, limits)
        ex, reason, detail = _execution_verdict([gold_result], predicted, _ordered(gold_check.tree))
        return Score(em, em_canonical, ex, None, SCORED, reason, detail, level, exec_s=exec_s + more)
    finally:
        conn.close()
