"""Summaries of scored runs: rates with 95% Wilson intervals, reasons, categories, hardness; Markdown."""

from __future__ import annotations

import math
from collections import Counter


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return (0.0, 0.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _rate(records: list[dict], key: str) -> dict:
    values = [r[key] for r in records if r.get(key) is not None]
    hits = sum(bool(v) for v in values)
    low, high = wilson_interval(hits, len(values))
    return {"rate": hits / len(values) if values else None, "n": len(values), "ci95": [low, high]}


def summarize(records: list[dict]) -> dict:
    scored = [r for r in records if r["category"] == "scored"]
    summary = {
        "examples": len(records),
        "categories": dict(Counter(r["category"] for r in records)),
        "em": _rate(records, "em"),
        "em_canonical": _rate(records, "em_canonical"),
        "ex": _rate(scored, "ex"),
        "ex_nocase": _rate(scored, "ex_nocase"),
        "ex_on_gold_constant": _rate([r for r in records if r["category"] == "gold_constant"], "ex"),
        "failure_reasons": dict(Counter(r["reason"] for r in scored if r["reason"])),
    }
    levels = sorted({r["hardness"] for r in scored if r.get("hardness")},
                    key=["easy", "medium", "hard", "extra"].index)
    if levels:
        summary["hardness"] = {level: _rate([r for r in scored if r.get("hardness") == level], "ex")
                               for level in levels}
    origins = sorted({r["origin"] for r in records if r.get("origin")})
    if origins:  # wikisql (generic one-table rows) and named (Spider-derived) rows behave differently
        summary["by_origin"] = {
            origin: {"examples": sum(r.get("origin") == origin for r in records),
                     "ex": _rate([r for r in scored if r.get("origin") == origin], "ex"),
                     "ex_nocase": _rate([r for r in scored if r.get("origin") == origin], "ex_nocase")}
            for origin in origins}
    if any("augmented" in r for r in records):
        # Rows whose augmentation failed its gold check keep their narrow schema: say how many did not.
        summary["augmented"] = sum(bool(r.get("augmented")) for r in records)
        for origin, part in summary.get("by_origin", {}).items():
            part["augmented"] = sum(bool(r.get("augmented")) for r in records if r.get("origin") == origin)
    latencies = sorted(r["latency_ms"] for r in records if r.get("latency_ms") is not None)
    if latencies:
        summary["latency_ms_p50"] = latencies[len(latencies) // 2]
    return summary


def _fmt(rate: dict) -> str:
    if rate["rate"] is None:
        return "n/a"
    low, high = rate["ci95"]
    return f"{rate['rate']:.1%} [{low:.1%}, {high:.1%}] (n={rate['n']})"


def markdown(summary: dict, title: str = "Evaluation") -> str:
    lines = [f"# {title}", "", "| metric | value (95% CI) |", "|---|---|"]
    lines += [f"| exact match (normalized) | {_fmt(summary['em'])} |",
              f"| exact match (sqlglot canonical) | {_fmt(summary['em_canonical'])} |",
              f"| execution accuracy, strict | {_fmt(summary['ex'])} |"]
    if summary["ex_nocase"]["n"]:
        lines.append(f"| execution accuracy, case-insensitive strings | {_fmt(summary['ex_nocase'])} |")
    lines += ["", f"Examples: {summary['examples']}; categories: {summary['categories']}. "
              "EX counts `scored` examples only: `gold_error` (gold does not run) and `gold_constant` "
              "(gold gives the same result on every synthesized database) are reported apart, "
              f"EX on gold_constant: {_fmt(summary['ex_on_gold_constant'])}.", "",
              "| failure reason | count |", "|---|---|"]
    lines += [f"| {reason} | {count} |" for reason, count in sorted(summary["failure_reasons"].items())]
    if "by_origin" in summary:
        lines += ["", "| origin | examples | EX strict | EX case-insensitive |", "|---|---|---|---|"]
        lines += [f"| {origin} | {part['examples']} | {_fmt(part['ex'])} | {_fmt(part['ex_nocase'])} |"
                  for origin, part in summary["by_origin"].items()]
    if "hardness" in summary:
        lines += ["", "| hardness | EX |", "|---|---|"]
        lines += [f"| {level} | {_fmt(rate)} |" for level, rate in summary["hardness"].items()]
    return "\n".join(lines) + "\n"


def _origin_rate(summary: dict, origin: str) -> str:
    part = summary.get("by_origin", {}).get(origin)
    return _fmt(part["ex"]) if part else "n/a"


def views_markdown(summaries: dict[str, dict], title: str = "Evaluation") -> str:
    """One row per view (realistic first: it is the headline), split by origin."""
    order = sorted(summaries, key=lambda view: view != "realistic")
    lines = [f"# {title}", "",
             "| schemas | EX strict | EX strict, wikisql rows | EX strict, named rows | EX case-insensitive "
             "| EM (canonical) | rows augmented |", "|---|---|---|---|---|---|---|"]
    for view in order:
        summary = summaries[view]
        augmented = f"{summary['augmented']} / {summary['examples']}" if "augmented" in summary else "-"
        lines.append(f"| {view} | {_fmt(summary['ex'])} | {_origin_rate(summary, 'wikisql')} | "
                     f"{_origin_rate(summary, 'named')} | {_fmt(summary['ex_nocase'])} | "
                     f"{_fmt(summary['em_canonical'])} | {augmented} |")
    lines += ["", "`realistic`: the same rows and gold SQL with distractor columns and tables and key lines "
              "(sqlfoundry.data.augment.REALISTIC_VIEW); `original`: the rows' own contexts, which hold exactly "
              "the columns the gold uses. Per-view details: `<view>/summary.md`."]
    return "\n".join(lines) + "\n"


def compare_markdown(a: list[dict], b: list[dict], name_a: str, name_b: str, max_rows: int = 50) -> str:
    by_id = {r["id"]: r for r in b}
    sa, sb = summarize(a), summarize(b)
    lines = [f"# {name_a} vs {name_b}", "", f"| metric | {name_a} | {name_b} |", "|---|---|---|"]
    for key in ("em", "em_canonical", "ex", "ex_nocase"):
        lines.append(f"| {key} | {_fmt(sa[key])} | {_fmt(sb[key])} |")
    changed = [(r, by_id[r["id"]]) for r in a if r["id"] in by_id and r.get("ex") != by_id[r["id"]].get("ex")]
    lines += ["", f"{len(changed)} examples changed EX:", "",
              f"| id | question | {name_a} | {name_b} |", "|---|---|---|---|"]
    for left, right in changed[:max_rows]:
        cell = lambda r: f"{'OK' if r['ex'] else r['reason']}: `{r['prediction']}`"  # noqa: E731
        lines.append(f"| {left['id']} | {left['question'][:60]} | {cell(left)} | {cell(right)} |")
    return "\n".join(lines) + "\n"
