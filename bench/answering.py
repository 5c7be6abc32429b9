"""Answering strategies on the same model: builtin SmolLM2 zero-shot on the first rows of the
held-out set (bench/results/heldout_500.jsonl, original contexts), answered greedily, with k=2
retrieved examples, and with those examples plus execution-guided voting over N=4 candidates.

Examples come from ../shared/data/sql-create-context/sql_create_context_v4.json with every held-out
row left out (by question, and by schema + SQL). EX is strict execution accuracy on 3 synthesized
databases per example with its 95% Wilson interval; latency is each batch's wall time over its
rows (batches of 8 questions). Results are written after each strategy, so a cut run keeps what it
finished.

    nice -n 10 .venv/bin/python bench/answering.py [--limit 100]   # 16 rows fit 15 minutes on a loaded 2-core CPU
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
# Greedy last: zero-shot it rarely ends its turn, so every row runs to max_new_tokens and it is the
# slowest of the three on a loaded CPU; the strategies under test finish first if a run is cut.
STRATEGIES = {
    "retrieval_k2": {"few_shot_k": 2},
    "retrieval_k2_voting_n4": {"few_shot_k": 2, "candidates": 4},
    "greedy": {},
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from sqlfoundry.answering.pipeline import Pipeline
    from sqlfoundry.answering.retrieve import ExampleIndex
    from sqlfoundry.config.schema import StrategyConfig
    from sqlfoundry.evaluation.datasets import load_examples
    from sqlfoundry.evaluation.report import summarize
    from sqlfoundry.evaluation.runner import predict, score_all
    from sqlfoundry.modeling.loading import load_for_inference, set_cpu_threads

    set_cpu_threads()
    started = time.perf_counter()
    pool = example_pool()
    index = ExampleIndex(pool)
    index_s = time.perf_counter() - started
    examples = load_examples(HELDOUT, args.limit)
    model, tokenizer, system_prompt = load_for_inference(None, "smollm2-135m-instruct")
    results = {"model": "smollm2-135m-instruct", "rows": len(examples), "heldout": HELDOUT, "examples_pool": len(pool),
               "index_build_s": round(index_s, 1), "view": "original", "k_databases": 3, "batch_size": 8,
               "max_new_tokens": 128, "command": "nice -n 10 .venv/bin/python bench/answering.py "
                                                 f"--limit {args.limit}", "strategies": {}}
    for name, values in STRATEGIES.items():
        strategy = StrategyConfig(**values, examples=DATA if values.get("few_shot_k") else None)
        pipeline = Pipeline(strategy, index if strategy.few_shot_k else None)
        batch = deepcopy(examples)
        began = time.perf_counter()
        predict(batch, model, tokenizer, system_prompt, batch_size=8, max_new_tokens=128, pipeline=pipeline)
        generate_s = time.perf_counter() - began
        records = score_all(batch, k=3, seed=0, workers=1)
        summary = summarize(records)
        latencies = [e.latency_ms for e in batch]
        confidences = [e.extra["confidence"] for e in batch if e.extra.get("confidence") is not None]
        results["strategies"][name] = {
            "strategy": {k: v for k, v in strategy.model_dump().items() if k in ("candidates", "few_shot_k",
                                                                                  "temperature", "top_p")},
            "ex": summary["ex"], "ex_nocase": summary["ex_nocase"], "em": summary["em"],
            "failure_reasons": summary["failure_reasons"],
            "latency_ms_per_request": {"mean": round(statistics.mean(latencies), 1),
                                       "median": round(statistics.median(latencies), 1)},
            "generate_s": round(generate_s, 1),
            "mean_confidence": round(statistics.mean(confidences), 3) if confidences else None,
        }
        Path(OUT).write_text(json.dumps(results, indent=2) + "\n")
        ex = summary["ex"]
        print(f"{name}: EX {ex['rate']:.3f} [{ex['ci95'][0]:.3f}, {ex['ci95'][1]:.3f}] (n={ex['n']}), "
              f"{statistics.mean(latencies):.0f} ms/request", flush=True)


if __name__ == "__main__":
    main()
