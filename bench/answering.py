"""Answering strategies on the same model (issue 12): on the first rows of the held-out set
(bench/results/heldout_500.jsonl), for a model (builtin SmolLM2 zero-shot, or a fine-tuned adapter),
on each view (`realistic`: distractor columns and tables added, gold unchanged; `original`: the rows'
own contexts), answered by each strategy: greedy; + pruning; + k=2 retrieved examples; + voting over
N=4 candidates; all together.

Examples come from ../shared/data/sql-create-context/sql_create_context_v4.json with every held-out
row left out (by question, and by schema + SQL). EX is strict execution accuracy on 3 synthesized
databases per example with its 95% Wilson interval; latency is each batch's wall time over its
rows (batches of 8 questions). Results are written after each strategy, so a cut run keeps what it
finished; a run keeps the entries of other (model, view) pairs already in the file.

    .venv/bin/python bench/answering.py [--adapter outputs/bench/long120-wide/adapter] [--views realistic original]
        [--strategies greedy prune ...] [--limit 100]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from copy import deepcopy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = os.path.relpath(ROOT.parent / "shared/data/sql-create-context/sql_create_context_v4.json", ROOT)
HELDOUT = "bench/results/heldout_500.jsonl"
OUT = "bench/results/answering.json"
STRATEGIES = {
    "greedy": {},
    "prune": {"prune": True},
    "retrieval_k2": {"few_shot_k": 2},
    "voting_n4": {"candidates": 4},
    "all": {"prune": True, "few_shot_k": 2, "candidates": 4},
}


def _normal(question: str) -> str:
    return " ".join(question.lower().split()).rstrip("?. ")


def example_pool() -> list[dict]:
    from sqlfoundry.data.prepare import row_problem

    heldout = [json.loads(line) for line in Path(HELDOUT).read_text().splitlines() if line.strip()]
    questions = {_normal(r["question"]) for r in heldout}
    pairs = {(r["context"], r["answer"]) for r in heldout}
    return [r for r in json.loads(Path(DATA).read_text()) if row_problem(r) is None
            and _normal(r["question"]) not in questions and (r["context"], r["answer"]) not in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100, help="first N held-out rows (100)")
    parser.add_argument("--adapter", help="adapter folder (default: builtin SmolLM2 zero-shot)")
    parser.add_argument("--views", nargs="+", default=["realistic", "original"], choices=["realistic", "original"])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    args = parser.parse_args()
    os.chdir(ROOT)
    logging.basicConfig(level=logging.WARNING)

    from sqlfoundry.answering.pipeline import Pipeline
    from sqlfoundry.answering.retrieve import ExampleIndex
    from sqlfoundry.config.schema import StrategyConfig
    from sqlfoundry.evaluation.datasets import load_examples
    from sqlfoundry.evaluation.report import summarize
    from sqlfoundry.evaluation.runner import predict, score_all
    from sqlfoundry.evaluation.views import view_examples
    from sqlfoundry.modeling.loading import load_for_inference, set_cpu_threads

    set_cpu_threads()
    started = time.perf_counter()
    pool = example_pool()
    index = ExampleIndex(pool)
    index_s = time.perf_counter() - started
    examples, heldout = load_examples(HELDOUT, args.limit), load_examples(HELDOUT)
    model_name = args.adapter or "smollm2-135m-instruct"
    model, tokenizer, system_prompt = load_for_inference(args.adapter, None if args.adapter else model_name)
    results = json.loads(Path(OUT).read_text()) if Path(OUT).exists() else {}
    results = results if "runs" in results else {"runs": {}}  # an older single-run file is replaced
    results.update({"heldout": HELDOUT, "examples_pool": len(pool), "index_build_s": round(index_s, 1),
                    "k_databases": 3, "batch_size": 8, "max_new_tokens": 64})
    command = (f".venv/bin/python bench/answering.py --limit {args.limit}"
               + (f" --adapter {args.adapter}" if args.adapter else ""))
    for view in args.views:
        viewed = view_examples(examples, view, heldout)
        run = results["runs"].setdefault(f"{model_name} | {view}", {"model": model_name, "view": view,
                                                                     "strategies": {}})
        run.update({"rows": len(viewed), "command": f"{command} --views {view}"})
        for name in args.strategies:
            values = STRATEGIES[name]
            strategy = StrategyConfig(**values, examples=DATA if values.get("few_shot_k") else None)
            pipeline = Pipeline(strategy, index if strategy.few_shot_k else None)
            batch = deepcopy(viewed)
            began = time.perf_counter()
            predict(batch, model, tokenizer, system_prompt, batch_size=8, max_new_tokens=64, pipeline=pipeline)
            generate_s = time.perf_counter() - began
            summary = summarize(score_all(batch, k=3, seed=0, workers=1))
            latencies = [e.latency_ms for e in batch]
            confidences = [e.extra["confidence"] for e in batch if e.extra.get("confidence") is not None]
            run["strategies"][name] = {
                "strategy": {k: v for k, v in strategy.model_dump().items()
                             if k in ("candidates", "few_shot_k", "prune", "prune_min_columns", "temperature", "top_p")},
                "ex": summary["ex"], "ex_nocase": summary["ex_nocase"], "em": summary["em"],
                "failure_reasons": summary["failure_reasons"],
                "latency_ms_per_request": {"mean": round(statistics.mean(latencies), 1),
                                           "median": round(statistics.median(latencies), 1)},
                "generate_s": round(generate_s, 1),
                "mean_confidence": round(statistics.mean(confidences), 3) if confidences else None,
                "pruned_rows": sum(1 for e in batch if e.extra.get("pruned_columns") or e.extra.get("pruned_tables")),
            }
            Path(OUT).write_text(json.dumps(results, indent=2) + "\n")
            ex = summary["ex"]
            print(f"{model_name} {view} {name}: EX {ex['rate']:.3f} [{ex['ci95'][0]:.3f}, {ex['ci95'][1]:.3f}] "
                  f"(n={ex['n']}), {statistics.mean(latencies):.0f} ms/request", flush=True)


if __name__ == "__main__":
    main()
