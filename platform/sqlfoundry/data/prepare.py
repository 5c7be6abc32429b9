"""Validate, deduplicate, decontaminate, sample and split rows, counting every row that is dropped;
then, for few_shot_k > 0, give each row the solved examples its training prompt shows."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from sqlfoundry.config.schema import DataConfig
from sqlfoundry.data.augment import TRAIN_POOL, augment_rows, build_vocabulary, realistic_view
from sqlfoundry.data.examples import example_problem
from sqlfoundry.data.mix import mix_rows
from sqlfoundry.data.sources import load_raw_rows
from sqlfoundry.sql.schema import SchemaError, parse_schema

log = logging.getLogger(__name__)
FIELDS = ("question", "context", "answer")


def normalize_text(text: str) -> str:
    """Case- and whitespace-insensitive key used for dedup and decontamination."""
    return " ".join(text.lower().split()).rstrip(" ;?.")


@dataclass
class DataReport:
    source: str
    rows_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    duplicates: int = 0
    excluded: int = 0  # rows that also appear in a data.exclude file
    rows_valid: int = 0
    train_rows: int = 0
    eval_rows: int = 0
    mix: dict[str, dict] = field(default_factory=dict)  # origin -> weight, rows, sampled (data.mix)
    augmented: int = 0  # training rows whose schema was augmented (data.augment)
    augment_tables_only: int = 0  # of those, SELECT * golds: distractor tables, no columns
    augment_skipped: int = 0  # not drawn (data.augment.probability)
    augment_failed: dict[str, int] = field(default_factory=dict)  # reason -> rows kept unaugmented
    augment_seconds: float = 0.0
    eval_view: str = "original"  # "realistic" when the eval rows carry the realistic-schema view
    eval_augmented: int = 0
    fingerprint: str = ""  # sha256 of the prepared train+eval rows

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        dropped = ", ".join(f"{reason}={count}" for reason, count in sorted(self.dropped.items())) or "none"
        line = (
            f"data {self.source}: read {self.rows_read}, dropped {sum(self.dropped.values())} ({dropped}), "
            f"duplicates {self.duplicates}, excluded {self.excluded}, valid {self.rows_valid} -> "
            f"train {self.train_rows}, eval {self.eval_rows}"
        )
        if self.mix:
            line += "; mix " + ", ".join(f"{o} {c['rows']}->{c['sampled']}" for o, c in self.mix.items())
        if self.augmented or self.augment_failed or self.augment_skipped:
            failed = ", ".join(f"{reason}={count}" for reason, count in self.augment_failed.items()) or "none"
            line += (f"; augmented {self.augmented} train rows in {self.augment_seconds:.1f}s (skipped "
                     f"{self.augment_skipped}, kept unaugmented: {failed}), eval view {self.eval_view}")
        return line


@dataclass
class PreparedData:
    train: list[dict]
    eval: list[dict]
    report: DataReport


def row_problem(row: dict) -> str | None:
    """Why a row is unusable (a reason key for the report), or None when it is fine."""
    for name in FIELDS:
        value = row.get(name)
        if value is None:
            return f"missing_{name}"
        if not isinstance(value, str):
            return f"non_text_{name}"
        if not value.strip():
            return f"empty_{name}"
    try:
        parse_schema(row["context"])
    except SchemaError:
        return "context_not_create_table"
    return None


def validate_rows(rows: list[dict], report: DataReport, progress: bool = True) -> list[dict]:
    dropped: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    valid = []
    for row in tqdm(rows, desc="validating rows", unit="row", disable=not progress or len(rows) < 5000):
        problem = row_problem(row)
        if problem:
            dropped[problem] += 1
            continue
        key = (normalize_text(row["context"]), normalize_text(row["question"]))
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        valid.append({name: row[name].strip() for name in FIELDS})
    report.dropped = dict(dropped)
    return valid


def decontaminate(rows: list[dict], data: DataConfig, report: DataReport) -> list[dict]:
    """Drop rows whose question, or schema + gold SQL, appears in any data.exclude file."""
    questions: set[str] = set()
    schema_sql: set[tuple[str, str]] = set()
    for source in data.exclude:
        for row in load_raw_rows(data, source):
            if row_problem(row) is None:
                questions.add(normalize_text(row["question"]))
                schema_sql.add((normalize_text(row["context"]), normalize_text(row["answer"])))
    kept = [
        row for row in rows
        if normalize_text(row["question"]) not in questions
        and (normalize_text(row["context"]), normalize_text(row["answer"])) not in schema_sql
    ]
    report.excluded = len(rows) - len(kept)
    return kept


def _eval_count(eval_size: float, total: int) -> int:
    count = int(eval_size) if eval_size >= 1 else max(1, round(eval_size * total))
    if count >= total:
        raise ValueError(f"data.eval_size={eval_size} leaves no training rows out of {total} valid rows")
    return count


def _mix_and_augment(train_rows: list[dict], eval_rows: list[dict], data: DataConfig,
                     report: DataReport) -> tuple[list[dict], list[dict]]:
    """Origin weights (data.mix) and schema augmentation (data.augment) of the training rows.

    Augmentation draws only from the training rows (their tables, their even-pool names). The eval
    rows stay the same rows; with augmentation on they get the evaluation's realistic view (eval-pool
    names, a fixed seed, independent of data.augment's knobs), so eval loss and early stopping
    measure on the schemas the run is trained for, and reproducibly."""
    unique_train = train_rows
    if data.mix:
        train_rows, report.mix = mix_rows(train_rows, data.mix, data.seed)
        if not train_rows:
            raise ValueError(f"data.mix={data.mix} leaves no training rows (origins: {report.mix})")
    if not data.augment.enabled:
        return train_rows, eval_rows
    vocabulary = build_vocabulary(unique_train, TRAIN_POOL)
    train_rows, stats = augment_rows(train_rows, vocabulary, data.augment)
    report.augmented, report.augment_tables_only = stats.augmented, stats.tables_only
    report.augment_skipped, report.augment_failed, report.augment_seconds = stats.skipped, stats.failed, stats.seconds
    eval_rows, eval_stats = realistic_view(eval_rows)
    report.eval_view, report.eval_augmented = "realistic", eval_stats.augmented
    return train_rows, eval_rows


def fingerprint(train_rows: list[dict], eval_rows: list[dict]) -> str:
    """sha256 of the rows a run trains and evaluates on: the data's identity in manifests."""
    return hashlib.sha256(json.dumps([train_rows, eval_rows], sort_keys=True).encode()).hexdigest()


def prepare_rows(rows: list[dict], data: DataConfig, source: str, progress: bool = True) -> PreparedData:
    report = DataReport(source=source, rows_read=len(rows))
    valid = decontaminate(validate_rows(rows, report, progress), data, report)
    report.rows_valid = len(valid)
    if not valid:
        raise ValueError(f"data.source {source}: no usable rows ({report.summary()})")
    order = list(range(len(valid)))
    random.Random(data.seed).shuffle(order)
    if data.sample_size is not None:
        order = order[: data.sample_size]
    n_eval = _eval_count(data.eval_size, len(order))
    eval_rows = [valid[i] for i in order[:n_eval]]
    train_rows = [valid[i] for i in order[n_eval:]]
    train_rows, eval_rows = _mix_and_augment(train_rows, eval_rows, data, report)
    report.train_rows, report.eval_rows = len(train_rows), len(eval_rows)
    report.fingerprint = fingerprint(train_rows, eval_rows)
    return PreparedData(train=train_rows, eval=eval_rows, report=report)


def prepare_data(data: DataConfig, progress: bool = True) -> PreparedData:
    prepared = prepare_rows(load_raw_rows(data), data, data.source, progress)
    log.info(prepared.report.summary())
    return prepared


# A row's retrieved examples travel under this key (rows without it have none): the training
# prompt is training_example(row, system_prompt, row.get(EXAMPLES_KEY, ())).
EXAMPLES_KEY = "examples"
# search(question, schema, k, exclude): up to k rows of the example pool, best first, none at a pool
# position in `exclude`. Training hands in answering.retrieve.ExampleIndex.search: answering imports
# data, so data cannot import it, and a plain callable keeps one ranking code for training and serving.
Search = Callable[[str, str, int, Collection[int]], list[dict]]


def example_pool(train_rows: list[dict]) -> tuple[list[dict], list[int | None]]:
    """The training rows usable as examples (data.examples.example_problem), in order: what the
    adapter's examples.jsonl holds and serving retrieves from, so training must retrieve from exactly
    these. Also each training row's position in the pool (None: not in it)."""
    pool: list[dict] = []
    positions: list[int | None] = []
    for row in train_rows:
        if example_problem(row) is None:
            positions.append(len(pool))
            pool.append({name: row[name] for name in FIELDS})
        else:
            positions.append(None)
    return pool, positions


def attach_examples(prepared: PreparedData, pool: list[dict], positions: list[int | None], search: Search,
                    k: int) -> None:
    """Give every training and eval row its `k` examples from `pool` (training rows only), under
    EXAMPLES_KEY. Never shown: the row itself (by its pool position) nor any pool row with its
    question or with its schema and gold SQL: data.mix repeats rows and a paraphrase over the same
    schema has the same SQL, and either would put the answer in the prompt."""
    by_question: dict[str, set[int]] = defaultdict(set)
    by_answer: dict[tuple[str, str], set[int]] = defaultdict(set)
    for position, row in enumerate(pool):
        by_question[normalize_text(row["question"])].add(position)
        by_answer[(normalize_text(row["context"]), normalize_text(row["answer"]))].add(position)

    def examples(row: dict, own: int | None) -> dict:
        leaks = (by_question.get(normalize_text(row["question"]), set())
                 | by_answer.get((normalize_text(row["context"]), normalize_text(row["answer"])), set()))
        exclude = (leaks | {own}) if own is not None else leaks
        return {**row, EXAMPLES_KEY: search(row["question"], row["context"], k, exclude)}

    rows = tqdm(zip(prepared.train, positions), total=len(prepared.train), desc="retrieving examples",
                unit="row", disable=len(prepared.train) < 5000)
    prepared.train = [examples(row, own) for row, own in rows]
    prepared.eval = [examples(row, None) for row in prepared.eval]
