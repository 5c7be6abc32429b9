"""`sqlfoundry eval`: generate predictions (batched), score them in parallel, write JSONL + Markdown."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from sqlfoundry.data.sources import DataError
from sqlfoundry.evaluation.datasets import Example
from sqlfoundry.evaluation.report import markdown, summarize, views_markdown
from sqlfoundry.evaluation.scoring import Limits, score_real_db, score_schema_only
from sqlfoundry.evaluation.views import view_examples


def predict(examples: list[Example], model, tokenizer, system_prompt: str, batch_size: int = 8,
            max_new_tokens: int = 128, pipeline=None) -> None:
    """Fill each example's prediction and latency (its batch's wall time over the batch size)
    through the answering pipeline (default strategy: one greedy decode); how the answer was chosen
    (candidates, votes, pruning, examples shown) goes into the example's record."""
    from sqlfoundry.answering.local import answer_questions
    from sqlfoundry.answering.pipeline import Pipeline
    from sqlfoundry.config.schema import StrategyConfig

    pipeline = pipeline or Pipeline(StrategyConfig())
    for start in tqdm(range(0, len(examples), batch_size), desc="generating SQL", unit="batch"):
        batch = examples[start:start + batch_size]
        began = time.perf_counter()
        answers = answer_questions(model, tokenizer, pipeline, [e.schema for e in batch], [e.question for e in batch],
                                   system_prompt=system_prompt, max_new_tokens=max_new_tokens)
        per_example_ms = (time.perf_counter() - began) * 1000 / len(batch)
        for example, (plan, choice) in zip(batch, answers):
            example.prediction, example.latency_ms = choice.generation.sql, per_example_ms
            example.extra.update(choice.record(), pruned_tables=plan.pruned_tables,
                                 pruned_columns=plan.pruned_columns, few_shot=len(plan.examples))


def score_example(example: Example, k: int, seed: int, limits: Limits) -> dict:
    prediction = example.prediction or ""
    if example.db_path:
        score = score_real_db(example.db_path, example.gold, prediction, limits, schema=example.schema)
    else:
        score = score_schema_only(example.schema, example.gold, prediction, k=k, seed=seed + example.id,
                                  limits=limits)
    record = {"id": example.id, "question": example.question, "gold": example.gold, "prediction": prediction,
              "latency_ms": example.latency_ms, **score.to_dict(), **example.extra}
    return record


def _score_chunk(args) -> list[dict]:
    examples, k, seed, limits = args
    return [score_example(example, k, seed, limits) for example in examples]


def score_all(examples: list[Example], k: int = 3, seed: int = 0, limits: Limits = Limits(),
              workers: int | None = None, chunk: int = 25, map_chunks: Callable | None = None) -> list[dict]:
    """Score in a process pool (one worker per usable CPU), in input order, with a progress bar.
    `map_chunks(function, chunks)`, when given, runs the chunks instead and yields their results in
    order: the CLI passes raylayer.ray_map inside a Ray job, so the chunks run across the cluster."""
    workers = workers or len(os.sched_getaffinity(0))
    chunks = [(examples[i:i + chunk], k, seed, limits) for i in range(0, len(examples), chunk)]
    records: list[dict] = []
    bar = tqdm(total=len(examples), desc="executing SQL", unit="example")
    if map_chunks is not None:
        for part in map_chunks(_score_chunk, chunks):
            records.extend(part)
            bar.update(len(part))
    elif workers <= 1 or len(chunks) <= 1:
        for item in chunks:
            records.extend(_score_chunk(item))
            bar.update(len(item[0]))
    else:
        # spawn, not fork: the parent may hold torch's thread pools after generation
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for part in pool.map(_score_chunk, chunks):
                records.extend(part)
                bar.update(len(part))
    bar.close()
    return records


def write_run(records: list[dict], out_dir: str | Path, title: str, settings: dict) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictions.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
    summary = {**summarize(records), "settings": settings}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "summary.md").write_text(markdown(summary, title))
    return summary


def run_views(examples: list[Example], views: list[str], generate=None, k: int = 3, seed: int = 0,
              limits: Limits = Limits(), pool: list[Example] | None = None,
              map_chunks: Callable | None = None) -> dict[str, list[dict]]:
    """Score `examples` on each view; `generate(examples)` fills the predictions of a view (None:
    the examples already carry predictions, which only the original view can use); `map_chunks`
    as for score_all."""
    records = {}
    for view in views:
        batch = view_examples(examples, view, pool)
        if generate is not None:
            generate(batch)
        elif any(e.prediction is None for e in batch):
            raise ValueError(f"the {view} view needs a model to generate predictions for its schemas")
        records[view] = score_all(batch, k=k, seed=seed, limits=limits, map_chunks=map_chunks)
    return records


def write_views(records: dict[str, list[dict]], out_dir: str | Path, title: str, settings: dict) -> dict[str, dict]:
    """One view: its files in `out_dir` (as write_run). Several: each in `out_dir/<view>/`, and a
    side-by-side summary.json / summary.md in `out_dir`."""
    if len(records) == 1:
        [(view, rows)] = records.items()
        return {view: write_run(rows, out_dir, title, {**settings, "view": view})}
    out = Path(out_dir)
    summaries = {view: write_run(rows, out / view, f"{title} ({view} schemas)", {**settings, "view": view})
                 for view, rows in records.items()}
    (out / "summary.json").write_text(json.dumps({"views": summaries, "settings": settings}, indent=2,
                                                 default=str) + "\n")
    (out / "summary.md").write_text(views_markdown(summaries, title))
    return summaries


def read_run(path: str | Path) -> list[dict]:
    path = Path(path)
    file = path / "predictions.jsonl" if path.is_dir() else path
    if path.is_dir() and not file.exists() and (path / "realistic").is_dir():
        raise DataError(f"{path} holds one run per view: pass {path / 'realistic'} or {path / 'original'}")
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
