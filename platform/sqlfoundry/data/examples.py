"""Solved examples that travel with an adapter: `examples.jsonl` in the adapter folder.

Training writes the rows it trained on there, so retrieval at answer time draws from what the adapter
learned without any extra file; operators add their own question/SQL pairs for their schemas with
`sqlfoundry examples add` (a new registry version: versions never change). The registry checksums
the file like every other file of the version, and pull verifies it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from sqlfoundry.sql.validate import check_read_only

log = logging.getLogger(__name__)

EXAMPLES_FILE = "examples.jsonl"
FIELDS = ("question", "context", "answer")


def examples_path(adapter_dir: str | Path | None) -> Path | None:
    """The adapter's examples file, or None when it has none (older adapters, base models)."""
    if adapter_dir is None:
        return None
    path = Path(adapter_dir) / EXAMPLES_FILE
    return path if path.is_file() else None


def example_problem(row: dict) -> str | None:
    """Why a row cannot be a retrieval example (a reason key), or None. Gold SQL that is not a
    read-only query would be shown to the model as the way to answer."""
    from sqlfoundry.data.prepare import row_problem

    problem = row_problem(row)
    if problem:
        return problem
    checked = check_read_only(row["answer"])
    return None if checked.ok else f"answer_{checked.reason}"


def checked_examples(rows: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """The usable rows (only their three fields) and the count of each reason the others were refused."""
    kept, refused = [], Counter()
    for row in rows:
        problem = example_problem(row) if isinstance(row, dict) else "not_an_object"
        if problem:
            refused[problem] += 1
        else:
            kept.append({name: row[name] for name in FIELDS})
    return kept, dict(refused)


def write_examples(adapter_dir: str | Path, rows: list[dict]) -> Path:
    path = Path(adapter_dir) / EXAMPLES_FILE
    path.write_text("".join(json.dumps({name: row[name] for name in FIELDS}) + "\n" for row in rows))
    return path


def read_examples(path: str | Path) -> list[dict]:
    """The usable rows of an examples file. Adapter folders come from storage and are not trusted:
    rows that could not be written by `write_examples` (a missing field, SQL that writes) are
    dropped and counted in the log, never shown to the model."""
    from sqlfoundry.config.schema import DataConfig
    from sqlfoundry.data.sources import load_raw_rows

    rows, refused = checked_examples(load_raw_rows(DataConfig(), str(path)))
    if refused:
        log.warning("%s: %d rows are not usable examples and were left out: %s", path, sum(refused.values()), refused)
    return rows
