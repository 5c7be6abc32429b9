"""/v1/query on a real database: the same questions on Spider databases as sqlite files and loaded
into PostgreSQL (issue 13). Each engine's schema is introspected (databases.Database), the model
answers from that text (the answering pipeline, as the model replica runs it), and the SQL runs
read-only on that engine: greedy through run_candidate, and with --candidates N > 1 as /v1/query
does it, the replica checking and the ingress running every candidate on the database and voting
on its rows (serving.db_access.run_and_vote). EX compares the rows with the gold query's rows on the
original sqlite file (sql.execute.results_match: multiset, ordered when the gold orders).

Questions: sql-create-context rows whose answer equals a line of Spider's train_gold.sql after
lowercasing, removing whitespace and unifying quotes, which names their database; the first
--per-db of each of --dbs, in file order. The model sees each database's whole schema (every
table and column), as a user's would. The rows may be among the adapter's training rows (there it
saw only the narrow context): the figure to read is the difference between the engines.

    .venv/bin/python bench/db_accuracy.py [--adapter outputs/bench/long120-wide/adapter] [--per-db 10]
        [--candidates 1 4] [--dbs soccer_2 hr_1 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared/data"
DATA = SHARED / "sql-create-context/sql_create_context_v4.json"
SPIDER = SHARED / "spider-train-dbs"
OUT = ROOT / "bench/results/db_accuracy.json"
DBS = ["soccer_2", "hr_1", "music_1", "allergy_1", "dorm_1", "department_store", "game_1", "activity_1",
       "wine_1", "flight_1", "hospital_1", "movie_1"]
READER, READER_PASSWORD = "bench_reader", "bench-reader-pw"
BATCH = 8


def _normal_sql(sql: str) -> str:
    return re.sub(r"\s+", "", sql.lower()).replace('"', "'")


def questions(dbs: list[str], per_db: int) -> list[dict]:
    gold_db: dict[str, str] = {}
    for line in (SPIDER / "train_gold.sql").read_text().splitlines():
        if "\t" in line:
            sql, db_id = line.rsplit("\t", 1)
            gold_db.setdefault(_normal_sql(sql), db_id)
    picked: dict[str, list[dict]] = {db: [] for db in dbs}
    for row in json.loads(DATA.read_text()):
        db_id = gold_db.get(_normal_sql(row["answer"]))
        if db_id in picked and len(picked[db_id]) < per_db:
            picked[db_id].append({"db_id": db_id, "question": row["question"], "gold": row["answer"]})
    return [row for db in dbs for row in picked[db]]


def gold_rows(row: dict) -> tuple[list[tuple] | None, bool]:
    import sqlglot

    from sqlfoundry.sql.execute import open_read_only, run_query

    conn = open_read_only(str(SPIDER / "database" / row["db_id"] / f"{row['db_id']}.sqlite"))
    try:
        result = run_query(conn, row["gold"], timeout_s=30, max_rows=100_000)
    finally:
        conn.close()
    try:
        ordered = sqlglot.parse_one(row["gold"], read="sqlite").args.get("order") is not None
    except Exception:
        ordered = "order by" in row["gold"].lower()
    return (result.rows if result.ok else None), ordered


def answer(model, tokenizer, system_prompt, db, rows: list[dict], candidates: int) -> list[dict]:
    """Each row's SQL as run on `db`, its rows and what was voted, in batches of BATCH questions."""
    from sqlfoundry.answering.local import answer_questions
    from sqlfoundry.answering.pipeline import Pipeline
    from sqlfoundry.config.schema import StrategyConfig
    from sqlfoundry.databases import run_candidate
    from sqlfoundry.serving.db_access import run_and_vote

    snapshot = db.schema()
    pipeline = Pipeline(StrategyConfig(candidates=candidates, max_candidates=max(candidates, 1)))
    out = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        began = time.perf_counter()
        # As the model replica does for /v1/query: candidates checked, not executed (no databases).
        executes = [[] for _ in batch] if candidates > 1 else None
        answered = answer_questions(model, tokenizer, pipeline, [snapshot.text] * len(batch),
                                    [r["question"] for r in batch], system_prompt=system_prompt,
                                    max_new_tokens=128, executes=executes)
        generated = time.perf_counter() - began
        for row, (_, choice) in zip(batch, answered):
            began_run = time.perf_counter()
            if candidates > 1:
                outcome, confidence = run_and_vote(db, [asdict(c) for c in choice.candidates], None, snapshot.tables)
            else:
                outcome, confidence = run_candidate(db, choice.generation.sql, tables=snapshot.tables), None
            out.append({"question": row["question"], "db_id": row["db_id"], "generated": choice.generation.sql,
                        "sql": outcome.sql, "valid": outcome.valid, "error": outcome.error,
                        "rows": outcome.rows, "truncated": outcome.truncated, "confidence": confidence,
                        "generate_s": generated / len(batch), "run_s": time.perf_counter() - began_run})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="outputs/bench/long120-wide/adapter")
    parser.add_argument("--base", help="base model (default: the adapter's own)")
    parser.add_argument("--dbs", nargs="+", default=DBS)
    parser.add_argument("--per-db", type=int, default=10)
    parser.add_argument("--candidates", nargs="+", type=int, default=[1, 4])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from conftest import _free_port
    from pgcopy import copy_sqlite
    from pgserver import start

    from sqlfoundry.databases import Database, DatabaseConfig
    from sqlfoundry.evaluation.report import wilson_interval
    from sqlfoundry.modeling.loading import load_for_inference, set_cpu_threads
    from sqlfoundry.sql.execute import results_match

    rows = questions(args.dbs, args.per_db)
    golds = [gold_rows(r) for r in rows]
    set_cpu_threads()
    model, tokenizer, system_prompt = load_for_inference(args.adapter, args.base)
    server = start(_free_port())
    report = {"data": f"{os.path.relpath(DATA, ROOT)} rows matched to {os.path.relpath(SPIDER, ROOT)}/train_gold.sql",
              "adapter": os.path.relpath(Path(args.adapter).resolve(), ROOT), "dbs": args.dbs,
              "per_db": args.per_db, "questions": len(rows), "gold_failed": sum(g[0] is None for g in golds),
              "postgres_skipped": {}, "runs": {}}
    predictions_dir = ROOT / "bench/results/db_accuracy"
    predictions_dir.mkdir(parents=True, exist_ok=True)
    databases: dict[str, dict] = {"sqlite": {}, "postgres": {}}
    try:
        for db_id in args.dbs:
            path = SPIDER / "database" / db_id / f"{db_id}.sqlite"
            databases["sqlite"][db_id] = Database(db_id, DatabaseConfig(url=f"sqlite:///{path}", max_rows=100_000,
                                                                        timeout_s=30), {})
            report["postgres_skipped"][db_id] = copy_sqlite(path, server, db_id, READER, READER_PASSWORD)
            databases["postgres"][db_id] = Database(db_id, DatabaseConfig(
                url=server.url(READER, db_id), password_env="PW", max_rows=100_000, timeout_s=30),
                {"PW": READER_PASSWORD})
        for candidates in args.candidates:
            for engine in ("sqlite", "postgres"):
                began = time.perf_counter()
                predictions = []
                for db_id in args.dbs:
                    these = [r for r in rows if r["db_id"] == db_id]
                    predictions += answer(model, tokenizer, system_prompt, databases[engine][db_id], these,
                                          candidates)
                hits = 0
                for prediction, (gold, ordered) in zip(predictions, golds):
                    prediction["correct"] = bool(gold is not None and prediction["error"] is None and results_match(
                        gold, [tuple(r) for r in prediction["rows"]], ordered))
                    hits += prediction["correct"]
                    prediction["rows"] = prediction["rows"][:5]  # the file keeps a sample of each answer's rows
                scored = len(rows) - report["gold_failed"]
                name = f"{engine}_n{candidates}"
                report["runs"][name] = {
                    "engine": engine, "candidates": candidates, "ex": round(100 * hits / scored, 1),
                    "ex_95ci": [round(100 * bound, 1) for bound in wilson_interval(hits, scored)], "n": scored,
                    "valid": sum(p["valid"] for p in predictions),
                    "runtime_errors": sum(bool(p["error"]) and p["valid"] for p in predictions),
                    "generate_ms_per_question": round(1000 * sum(p["generate_s"] for p in predictions) / len(rows)),
                    "run_ms_per_question": round(1000 * sum(p["run_s"] for p in predictions) / len(rows), 1),
                    "seconds": round(time.perf_counter() - began)}
                (predictions_dir / f"{name}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
                print(name, json.dumps(report["runs"][name]), flush=True)
                OUT.write_text(json.dumps(report, indent=2) + "\n")
        report["agreement"] = {}
        for candidates in args.candidates:
            a, b = ([json.loads(line) for line in (predictions_dir / f"{engine}_n{candidates}.jsonl").read_text()
                     .splitlines()] for engine in ("sqlite", "postgres"))
            report["agreement"][f"n{candidates}"] = {
                "same_verdict": sum(x["correct"] == y["correct"] for x, y in zip(a, b)),
                "sqlite_only_correct": sum(x["correct"] and not y["correct"] for x, y in zip(a, b)),
                "postgres_only_correct": sum(y["correct"] and not x["correct"] for x, y in zip(a, b)),
                "same_generated_sql": sum(x["generated"] == y["generated"] for x, y in zip(a, b))}
        OUT.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["agreement"], indent=2))
        print(f"wrote {os.path.relpath(OUT, ROOT)}")
    finally:
        for engine in databases.values():
            for db in engine.values():
                db.dispose()
        server.stop()


if __name__ == "__main__":
    main()
