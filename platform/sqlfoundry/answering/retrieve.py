"""Few-shot retrieval: the solved examples (question, context, answer) most similar to a request.

BM25 (bm25s, numpy only) over each example's question words and schema identifiers, the request
ranked the same way. A row with the request's own question is never returned: in evaluation the
pool may hold the row being answered, and showing its SQL would be the answer key. Training
(few_shot_k) ranks its examples with this same search, so training and serving prompts match.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import bm25s
import numpy as np

from sqlfoundry.answering.words import schema_words, text_words


def _normal(question: str) -> str:
    return " ".join(question.lower().split()).rstrip("?. ")


def _document(question: str, schema: str) -> list[str]:
    return text_words(question) + schema_words(schema)


class ExampleIndex:
    def __init__(self, rows: list[dict]):
        self.rows = [{"question": r["question"], "context": r["context"], "answer": r["answer"]} for r in rows]
        self._bm25 = bm25s.BM25()
        if self.rows:
            # bm25s refuses an empty document; a one-word placeholder matches nothing real.
            self._bm25.index([_document(r["question"], r["context"]) or ["<empty>"] for r in self.rows],
                             show_progress=False)

    def __len__(self) -> int:
        return len(self.rows)

    def search(self, question: str, schema: str, k: int, exclude: Collection[int] = ()) -> list[dict]:
        """The `k` best-scoring rows, best first, leaving out rows asking `question` itself and the
        rows at the positions in `exclude` (training leaves out the row being trained on and its
        duplicates by position: text alone does not say which pool row is the row itself)."""
        if k <= 0 or not self.rows:
            return []
        known = self._bm25.vocab_dict
        query = [word for word in _document(question, schema) if word in known]
        if not query:
            return []
        scores = self._bm25.get_scores(query)
        own = _normal(question)
        ranked = np.argsort(-scores, kind="stable")  # best first, ties in file order
        picked = []
        for index in ranked.tolist():
            if scores[index] <= 0 or len(picked) == k:
                break
            if index not in exclude and _normal(self.rows[index]["question"]) != own:
                picked.append(self.rows[index])
        return picked


def load_index(path: str | Path) -> ExampleIndex:
    """An index of the usable rows of a JSON/JSONL/Parquet file (see data.examples.example_problem)."""
    from sqlfoundry.data.examples import read_examples

    return ExampleIndex(read_examples(path))
