"""Tuning results: one row per trial (table, CSV, JSON) and a PNG of the curves."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

COLUMNS = ["trial_id", "params", "best_eval_loss", "execution_accuracy", "final_metric", "steps_done",
           "tokens_per_second", "wall_time_s", "stopped_early", "status", "checkpoint_path"]
# What a search ranks by: the metric of a completed trial's final report, measured after training on
# exactly the weights that trial reports as its checkpoint (the adapter that is shipped). The best
# point of a curve would name a checkpoint that is not the one shipped.
RANKED_BY = "final evaluation of the shipped adapter"


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def trial_rows(result_grid, search_keys: list[str], metric: str = "eval_loss") -> tuple[list[dict], dict[str, list[dict]]]:
    """(rows, curves): a summary per trial and its reported (step, eval_loss, EX) history."""
    rows, curves = [], {}
    for result in result_grid:
        history = result.metrics_dataframe
        records = history.to_dict("records") if history is not None else []
        trial_id = result.metrics.get("trial_id") or Path(result.path).name
        curves[trial_id] = [{"step": int(r["step"]), "eval_loss": _clean(r.get("eval_loss")),
                             "execution_accuracy": _clean(r.get("execution_accuracy"))}
                            for r in records if "step" in r and not math.isnan(r["step"])]
        losses = [c["eval_loss"] for c in curves[trial_id] if c["eval_loss"] is not None]
        accuracies = [c["execution_accuracy"] for c in curves[trial_id] if c["execution_accuracy"] is not None]
        final = result.metrics or {}
        status = "error" if result.error is not None else ("completed" if final.get("completed") else "stopped")
        rows.append({
            "trial_id": trial_id,
            "params": {key: (result.config or {}).get(key) for key in search_keys},
            "best_eval_loss": min(losses) if losses else None,
            "execution_accuracy": max(accuracies) if accuracies else None,
            "final_metric": _clean(final.get(metric)) if status == "completed" else None,
            "steps_done": max((c["step"] for c in curves[trial_id]), default=0),
            "tokens_per_second": _clean(final.get("tokens_per_second")),
            "wall_time_s": _clean(final.get("time_total_s")),
            "stopped_early": status == "stopped",
            "status": status,
            # Where the trial's last checkpoint lives (its finished adapter when completed).
            "checkpoint_path": result.checkpoint.path if result.checkpoint else None,
            "checkpoint": result.checkpoint,
        })
    return rows, curves


def best_row(rows: list[dict], metric: str) -> dict | None:
    """The completed trial whose shipped adapter scored best (RANKED_BY)."""
    done = [r for r in rows if r["status"] == "completed" and r["final_metric"] is not None]
    if not done:
        return None
    return (min if metric == "eval_loss" else max)(done, key=lambda r: r["final_metric"])


def format_table(rows: list[dict], search_keys: list[str]) -> str:
    header = [*search_keys, "best_eval_loss", "EX", "final", "steps", "tokens/s", "wall_s", "stopped_early"]
    lines = [header]
    for row in rows:
        def fmt(value, spec):
            return "-" if value is None else format(value, spec)
        lines.append([*(format(row["params"][k], "g") for k in search_keys),
                      fmt(row["best_eval_loss"], ".4f"), fmt(row["execution_accuracy"], ".3f"),
                      fmt(row["final_metric"], ".4f"), str(row["steps_done"]), fmt(row["tokens_per_second"], ".1f"), fmt(row["wall_time_s"], ".1f"),
                      "yes" if row["stopped_early"] else "no"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)


def write_results(out_dir: Path, rows: list[dict], curves: dict, search_keys: list[str], metric: str,
                  best: dict | None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    public = [{k: v for k, v in row.items() if k != "checkpoint"} for row in rows]
    paths = {"json": out_dir / "tune_results.json", "csv": out_dir / "tune_results.csv",
             "plot": out_dir / "tune_results.png"}
    paths["json"].write_text(json.dumps({
        "metric": metric, "ranked_by": RANKED_BY, "best_trial": best["trial_id"] if best else None,
        "trials": public, "curves": curves,
    }, indent=2) + "\n")
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*search_keys, *COLUMNS[2:], "trial_id"])
        for row in public:
            writer.writerow([*(row["params"][k] for k in search_keys), *(row[c] for c in COLUMNS[2:]),
                             row["trial_id"]])
    _plot(paths["plot"], public, curves, search_keys, metric)
    return paths


def _plot(path: Path, rows: list[dict], curves: dict, search_keys: list[str], metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curve_axis, best_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for row in rows:
        points = [c for c in curves[row["trial_id"]] if c["eval_loss"] is not None]
        label = ", ".join(f"{k.split('.')[-1]}={row['params'][k]:g}" for k in search_keys)
        curve_axis.plot([p["step"] for p in points], [p["eval_loss"] for p in points], marker="o",
                        linestyle="--" if row["stopped_early"] else "-", label=label)
    curve_axis.set(xlabel="step", ylabel="eval loss", title="eval loss by trial (dashed: stopped early)")
    curve_axis.legend(fontsize=7)
    x_key = "loraplus.ratio" if "loraplus.ratio" in search_keys else search_keys[0]
    y_key = "best_eval_loss" if metric == "eval_loss" else "execution_accuracy"
    others = [k for k in search_keys if k != x_key]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row["params"][k] for k in others), []).append(row)
    for group, members in groups.items():
        members = sorted((m for m in members if m[y_key] is not None), key=lambda m: m["params"][x_key])
        label = ", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in zip(others, group)) or None
        best_axis.plot([m["params"][x_key] for m in members], [m[y_key] for m in members], marker="o", label=label)
    if x_key == "loraplus.ratio":
        best_axis.set_xscale("log", base=2)
    y_label = "best eval loss" if metric == "eval_loss" else "best execution accuracy"
    best_axis.set(xlabel=x_key, ylabel=y_label, title=f"{y_label} by {x_key}")
    if others:
        best_axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
