"""Execution-accuracy throughput: examples/s with K synthesized databases per example.

2,000 rows of ../shared/data/sql-create-context/sql_create_context_v4.json (first 2,000 valid rows
after a seed-0 shuffle), scored twice in the same run: gold against gold (every prediction right)
and gold against perturbed predictions (operators flipped, filters changed, so most are wrong).
Reports wall time, examples/s and the split between building databases and running queries.

    .venv/bin/python bench/eval_throughput.py [--rows 2000] [--k 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/sql-create-context/sql_create_context_v4.json"


def perturb(sql: str, rng: random.Random) -> str:
    """A plausible wrong query: flip a comparison, change a number, drop a filter or aggregate."""
    options = []
    if " > " in sql or " < " in sql:
        options.append(lambda s: s.replace(" > ", " <TMP> ").replace(" < ", " > ").replace(" <TMP> ", " < "))
    if re.search(r"\b\d+\b", sql):
        options.append(lambda s: re.sub(r"\b(\d+)\b", lambda m: str(int(m.group(1)) + 1), s, count=1))
    if " AND " in sql:
        options.append(lambda s: s.split(" AND ")[0])
    if " = " in sql:
        options.append(lambda s: s.replace(" = ", " <> ", 1))
    options.append(lambda s: re.sub(r"SELECT (COUNT|MAX|MIN|SUM|AVG)\(", "SELECT MIN(", s, count=1)
                   if re.search(r"SELECT (COUNT|MAX|MIN|SUM|AVG)\(", s) else s + " LIMIT 1")
    return rng.choice(options)(sql)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--out", default=str(ROOT / "bench/results/eval_throughput.json"))
    args = parser.parse_args()

    from sqlfoundry.data.prepare import row_problem
    from sqlfoundry.evaluation.datasets import Example
    from sqlfoundry.evaluation.report import summarize
    from sqlfoundry.evaluation.runner import score_all

    rows = [r for r in json.loads(DATA.read_text()) if row_problem(r) is None]
    random.Random(0).shuffle(rows)
    rows = rows[: args.rows]
    rng = random.Random(1)
    results = {"benchmark": "eval_throughput", "data": f"{DATA.name}: first {args.rows} valid rows, seed-0 shuffle",
               "k_databases": args.k, "workers": args.workers, "runs": {}}
    for name, make in (("gold_vs_gold", lambda sql: sql), ("gold_vs_perturbed", lambda sql: perturb(sql, rng))):
        examples = [Example(i, r["question"], r["context"], r["answer"], prediction=make(r["answer"]))
                    for i, r in enumerate(rows)]
        start = time.perf_counter()
        records = score_all(examples, k=args.k, seed=0, workers=args.workers)
        wall = time.perf_counter() - start
        summary = summarize(records)
        build, execute = sum(r["build_s"] for r in records), sum(r["exec_s"] for r in records)
        results["runs"][name] = {
            "wall_s": wall, "examples_per_s": len(records) / wall,
            "cpu_s_building_databases": build, "cpu_s_running_queries": execute,
            "share_building": build / (build + execute) if build + execute else None,
            "ex": summary["ex"]["rate"], "categories": summary["categories"],
            "failure_reasons": summary["failure_reasons"],
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
