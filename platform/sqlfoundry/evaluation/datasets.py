"""Evaluation inputs: schema-only rows (question/context/answer files) or the Spider layout.

Spider layout: a questions file (JSON list with question, query, db_id) next to `tables.json` and
`database/<db_id>/<db_id>.sqlite`. The prompt schema is the database's own CREATE TABLE statements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlfoundry.config.schema import DataConfig
from sqlfoundry.data.prepare import row_problem
from sqlfoundry.data.sources import DataError, load_raw_rows


@dataclass
class Example:
    id: int
    question: str
    schema: str
    gold: str
    db_path: str | None = None  # real database (Spider layout); None for schema-only rows
    prediction: str | None = None
    latency_ms: float | None = None
    extra: dict = field(default_factory=dict)


def _spider_questions(path: Path) -> list[dict] | None:
    if path.suffix != ".json" or not (path.parent / "database").is_dir():
        return None
    rows = json.loads(path.read_text())
    if not isinstance(rows, list) or not rows or "db_id" not in rows[0]:
        return None
    return rows


def load_examples(source: str, limit: int | None = None, data: DataConfig | None = None) -> list[Example]:
    """Examples in file order (first `limit`); schema-only rows that are unusable are skipped."""
    from sqlfoundry.evaluation.scoring import database_schema

    path = Path(source)
    spider = _spider_questions(path) if path.is_file() else None
    examples: list[Example] = []
    if spider is not None:
        schemas: dict[str, str] = {}
        for index, row in enumerate(spider[:limit] if limit else spider):
            db_path = path.parent / "database" / row["db_id"] / f"{row['db_id']}.sqlite"
            if not db_path.is_file():
                raise DataError(f"{source}: database {db_path} for db_id {row['db_id']!r} is missing")
            if row["db_id"] not in schemas:
                schemas[row["db_id"]] = database_schema(str(db_path))
            examples.append(Example(index, row["question"], schemas[row["db_id"]], row["query"], str(db_path),
                                    extra={"db_id": row["db_id"]}))
        return examples
    rows = load_raw_rows(data or DataConfig(), source)
    for index, row in enumerate(rows):
        if row_problem(row) is None:
            examples.append(Example(index, row["question"], row["context"], row["answer"]))
        if limit and len(examples) >= limit:
            break
    return examples


def load_predictions(path: str) -> list[Example]:
    """A JSONL file with question, schema (or context), gold (or answer) and prediction per line."""
    examples = []
    for index, line in enumerate(Path(path).read_text().splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            examples.append(Example(
                id=row.get("id", index), question=row.get("question", ""),
                schema=row.get("schema", row.get("context")), gold=row.get("gold", row.get("answer")),
                db_path=row.get("db_path"), prediction=row["prediction"] or "",
            ))
        except KeyError as err:
            raise DataError(f"{path} line {index + 1}: missing field {err}") from None
        if examples[-1].schema is None or examples[-1].gold is None:
            raise DataError(f"{path} line {index + 1}: needs schema (or context) and gold (or answer)")
    return examples
