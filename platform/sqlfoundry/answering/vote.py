"""Execution-guided voting (self-consistency): candidates that return the same rows on every
database are one answer; the answer most candidates give wins, a tie goes to the group holding
the greedy candidate (index 0), and `confidence` is the winning group's share of all candidates."""

from __future__ import annotations

from dataclasses import dataclass

from sqlfoundry.sql.execute import results_match


@dataclass
class Vote:
    winner: int | None  # index of the chosen candidate; None when no candidate ran on every database
    groups: list[list[int]]  # candidates by result, largest first
    confidence: float


def _same(a: list[list[tuple]], b: list[list[tuple]]) -> bool:
    # Unordered: two spellings of one answer differ in row order when neither orders its result.
    return all(results_match(x, y, ordered=False) for x, y in zip(a, b, strict=True))


def vote(results: list[list[list[tuple]] | None]) -> Vote:
    """`results[i]`: candidate i's rows on each database, or None when it failed a check or a run."""
    groups: list[list[int]] = []
    for index, rows in enumerate(results):
        if rows is None:
            continue
        group = next((g for g in groups if _same(results[g[0]], rows)), None)
        if group is None:
            groups.append([index])
        else:
            group.append(index)
    if not groups:
        return Vote(None, [], 0.0)
    groups.sort(key=lambda g: (-len(g), g[0]))  # stable: ties keep the group with the lowest index
    best = groups[0]
    return Vote(best[0], groups, len(best) / len(results))
