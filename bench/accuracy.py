"""Accuracy report: builtin SmolLM2 zero-shot, the quickstart fine-tune, and a longer CPU fine-tune on
sql-create-context without and with schema augmentation (same steps, same data, same held-out).

Held-out set: 500 rows of ../shared/data/sql-create-context/sql_create_context_v4.json (valid rows,
shuffled with seed 2026, first 500), written to bench/results/heldout_500.jsonl. The longer fine-tunes
train on the same file with those rows excluded (data.exclude), so no held-out question or
schema + SQL pair is trained on. Every run is scored on two views of the held-out rows: `realistic`
(distractor columns and tables added, gold unchanged: the headline) and `original` (the rows' own
contexts), split by origin (wikisql / named). Writes OUT/accuracy.md and OUT/results/accuracy.json
(runs not selected keep their earlier entry); every path written is relative to the repository root,
where the commands run.

    .venv/bin/python bench/accuracy.py [--runs long120 long120-augmented] [--long-steps 120] [--limit 500]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = os.path.relpath(ROOT.parent / "shared/data/sql-create-context/sql_create_context_v4.json", ROOT)
HELDOUT = "bench/results/heldout_500.jsonl"
CONFIG = "jobs/configs/quickstart.yaml"
VIEWS = ["realistic", "original"]


def build_heldout(size: int = 500, seed: int = 2026) -> None:
    from sqlfoundry.data.prepare import row_problem

    rows = [r for r in json.loads(Path(DATA).read_text()) if row_problem(r) is None]
    random.Random(seed).shuffle(rows)
    Path(HELDOUT).write_text("".join(json.dumps(r) + "\n" for r in rows[:size]))


def run_overrides(long_steps: int) -> dict[str, list[str] | None]:
    """Run name -> config overrides of jobs/configs/quickstart.yaml (None: no training)."""
    long = [f"data.source={DATA}", "data.sample_size=6000", "data.eval_size=64", f"data.exclude=[{HELDOUT}]",
            f"training.max_steps={long_steps}", f"training.eval_steps={long_steps // 2}",
            f"training.save_steps={long_steps // 2}", "training.final_generation_samples=0"]
    return {"zero-shot": None, "quickstart": [], f"long{long_steps}": long + ["data.augment.enabled=false"],
            f"long{long_steps}-augmented": long + ["data.augment.enabled=true"],
            # Training distractors as wide as the realistic view and wider (4 columns, 2 tables there).
            f"long{long_steps}-wide": long + ["data.augment.enabled=true", "data.augment.distractor_columns=[2,6]",
                                              "data.augment.distractor_tables=[1,3]",
                                              "data.augment.max_table_columns=16", "training.max_length=768"]}


def _same_recipe(saved, wanted) -> bool:
    return all(getattr(saved, part) == getattr(wanted, part) for part in ("model", "lora", "loraplus", "neftune",
                                                                         "data", "training"))


def train_if_missing(name: str, overrides: list[str]) -> tuple[str, str]:
    """Train unless output.dir already holds an adapter trained with the same recipe."""
    from sqlfoundry.config import load_config
    from sqlfoundry.training import train

    out = f"outputs/bench/{name}"
    overrides = overrides + [f"output.dir={out}"]
    wanted = load_config(CONFIG, overrides)
    done = Path(out, "adapter/adapter_config.json").exists() and Path(out, "config.yaml").exists()
    if not (done and _same_recipe(load_config(Path(out, "config.yaml")), wanted)):
        train(wanted)
    return f"{out}/adapter", f"sqlfoundry train --config {CONFIG} --no-ray " + " ".join(f"--set {o}" for o in overrides)


def evaluate(name: str, adapter: str | None, limit: int, results: Path) -> dict:
    from sqlfoundry.evaluation.datasets import load_examples
    from sqlfoundry.evaluation.runner import predict, run_views, write_views
    from sqlfoundry.modeling.loading import load_for_inference

    examples, pool = load_examples(HELDOUT, limit), load_examples(HELDOUT)
    model, tokenizer, system_prompt = load_for_inference(adapter, None if adapter else "smollm2-135m-instruct")
    generation_s = {}

    def generate(batch):
        start = time.perf_counter()
        predict(batch, model, tokenizer, system_prompt, batch_size=16, max_new_tokens=64)
        generation_s[batch[0].extra["view"] if batch else "none"] = round(time.perf_counter() - start, 1)

    records = run_views(examples, VIEWS, generate, k=3, seed=0, pool=pool)
    out = results / f"accuracy_{name}"
    (out / "predictions.jsonl").unlink(missing_ok=True)  # an earlier single-view run's file
    summaries = write_views(records, out, name, {"adapter": adapter, "heldout": HELDOUT})
    target = f"--adapter {adapter}" if adapter else "--model smollm2-135m-instruct"
    command = (f"sqlfoundry eval --data {HELDOUT} {target} --limit {limit} --k-databases 3 --batch-size 16 "
               f"--max-new-tokens 64 --view both --out {os.path.relpath(out, ROOT)}")
    return {"views": summaries, "generation_s": generation_s, "eval_command": command}


def _cell(rate: dict | None) -> str:
    if not rate or rate["rate"] is None:
        return "n/a"
    low, high = rate["ci95"]
    return f"{rate['rate']:.1%} [{low:.1%}, {high:.1%}] (n={rate['n']})"


def _origin(summary: dict, origin: str) -> str:
    return _cell(summary.get("by_origin", {}).get(origin, {}).get("ex"))


def _gap(entry: dict) -> str:
    original, realistic = (entry["views"][v]["ex"]["rate"] for v in ("original", "realistic"))
    return "n/a" if original is None or realistic is None else f"{(original - realistic) * 100:+.1f}"


def report(results: dict, limit: int) -> str:
    lines = [
        "# Accuracy on held-out sql-create-context (generated by bench/accuracy.py)", "",
        f"Held-out: {limit} rows of `sql_create_context_v4.json` (valid rows shuffled with seed 2026), "
        f"`{HELDOUT}`; decontaminated: the long fine-tunes exclude them via `data.exclude`, the quickstart "
        "trains on synthetic rows only. Model: builtin SmolLM2-135M-Instruct, CPU, greedy, 64 new tokens. "
        "EX uses 3 synthesized databases per example, 95% Wilson intervals.", "",
        "**Headline: strict EX on realistic schemas** (the same rows and gold SQL with 4 distractor columns per "
        "table, 2 distractor tables and key lines, names from a pool training never adds: "
        "`sqlfoundry.data.augment.REALISTIC_VIEW`). The original contexts hold exactly the columns the gold "
        "uses, which real schemas never do. `wikisql`: rows whose tables are all WikiSQL's `table_name_N` / "
        "`table_<id>`; `named`: the Spider-derived rows, often multi-table.", "",
        "| run | realistic EX | realistic, wikisql | realistic, named | original EX | original, wikisql "
        "| original, named | original - realistic (points) | realistic rows augmented |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results.items():
        real, orig = entry["views"]["realistic"], entry["views"]["original"]
        lines.append(f"| {name} | **{_cell(real['ex'])}** | {_origin(real, 'wikisql')} | {_origin(real, 'named')} "
                     f"| {_cell(orig['ex'])} | {_origin(orig, 'wikisql')} | {_origin(orig, 'named')} "
                     f"| {_gap(entry)} | {real.get('augmented', 'n/a')} / {real['examples']} |")
    lines += ["", "| run | schemas | EM (canonical) | EX case-insensitive | scored / gold_constant / gold_error "
              "| failure reasons |", "|---|---|---|---|---|---|"]
    for name, entry in results.items():
        for view in VIEWS:
            summary = entry["views"][view]
            cats = summary["categories"]
            lines.append(f"| {name} | {view} | {_cell(summary['em_canonical'])} | {_cell(summary['ex_nocase'])} "
                         f"| {cats.get('scored', 0)} / {cats.get('gold_constant', 0)} / {cats.get('gold_error', 0)} "
                         f"| {summary['failure_reasons']} |")
    lines += ["", "## Reproduce (from the repository root)", ""]
    for name, entry in results.items():
        lines.append(f"- {name}: train `{entry['train_command']}`; evaluate `{entry['eval_command']}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-steps", type=int, default=120)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--runs", nargs="+", metavar="RUN",
                        help="runs to train (if needed) and evaluate: zero-shot quickstart longN longN-augmented "
                             "longN-wide (N = --long-steps); default all")
    parser.add_argument("--out", default="bench", help="report folder: OUT/accuracy.md, OUT/results/ (bench)")
    args = parser.parse_args()
    runs = run_overrides(args.long_steps)
    unknown = sorted(set(args.runs or []) - set(runs))
    if unknown:
        parser.error(f"unknown run(s) {unknown}; choose from {list(runs)}")
    os.chdir(ROOT)  # every path below, and in the report, is relative to the repository root
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from sqlfoundry.modeling.loading import set_cpu_threads

    set_cpu_threads()
    out = Path(args.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    if not Path(HELDOUT).exists():
        build_heldout()
    results_file = out / "results/accuracy.json"
    earlier = json.loads(results_file.read_text()) if results_file.exists() else {}
    results = {name: entry for name, entry in earlier.items() if "views" in entry}  # older format: re-run
    for name in args.runs or list(runs):
        adapter, train_command = (None, "(no training)") if runs[name] is None else train_if_missing(name, runs[name])
        results[name] = {**evaluate(name, adapter, args.limit, out / "results"), "train_command": train_command}
    order = list(runs) + sorted(set(results) - set(runs))
    results = {name: results[name] for name in order if name in results}
    results_file.write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = report(results, args.limit)
    (out / "accuracy.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
