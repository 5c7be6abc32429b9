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
