"""Trainer callbacks: every logged metric also goes to a local JSONL file, whatever report_to says."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback


class JsonlMetricsCallback(TrainerCallback):
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def training_curve(path: str | Path) -> list[dict]:
    """(step, loss, eval_loss) points of a run's metrics.jsonl, for the registry manifest (the
    playground's Adapters tab plots them); [] when the run logged none."""
    path = Path(path)
    if not path.is_file():
        return []
    points: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line) if line.strip() else {}
        except ValueError:  # a line cut short by a worker that died mid-write: the curve goes on
            continue
        kept = {k: record[k] for k in ("loss", "eval_loss") if isinstance(record, dict)
                and isinstance(record.get(k), (int, float))}
        if kept and isinstance(record.get("step"), int):
            # A resumed run logs its steps again from the checkpoint on: the later record wins.
            points.setdefault(record["step"], {}).update(kept)
    return [{"step": step, **values} for step, values in sorted(points.items())]


class FailOnceAtStep(TrainerCallback):
    """Fault injection for recovery tests: raise at `step` unless `marker` exists (then create it).

    Enabled only through the environment (SQLFOUNDRY_FAULT_STEP, SQLFOUNDRY_FAULT_MARKER), so a
    test can make a Ray Train worker die once mid-run and check the restart from the checkpoint.
    """

    def __init__(self, step: int, marker: str | Path):
        self.step, self.marker = step, Path(marker)

    @classmethod
    def from_env(cls) -> "FailOnceAtStep | None":
        import os

        step, marker = os.environ.get("SQLFOUNDRY_FAULT_STEP"), os.environ.get("SQLFOUNDRY_FAULT_MARKER")
        return cls(int(step), marker) if step and marker else None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step and not self.marker.exists():
            self.marker.write_text(str(self.step))
            raise RuntimeError(f"injected fault at step {self.step}")
