"""Training progress as small event dicts, for one progress bar wherever the run is watched from.

The recipe's Trainer gets a ProgressCallback whose `emit` is a plain function: the CLI's console bar
in the same process (`--no-ray`), or a put into a queue that a Ray Train worker sends to the driver
(raylayer.relay). Events: {"event": "start", "step", "max_steps", "train_rows", "effective_batch",
"per_device", "workers", "accumulation"}, {"event": "step", "step"},
{"event": "log", "step", "logs"}, {"event": "end", "step"}. Only rank 0 emits.
"""

from __future__ import annotations

from collections.abc import Callable

from transformers import TrainerCallback


def _rows(loader) -> int | None:
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):  # an iterable dataset has no length
        return None


class ProgressCallback(TrainerCallback):
    def __init__(self, emit: Callable[[dict], None]):
        self.emit = emit

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if state.is_world_process_zero:
            self.emit({"event": "start", "step": state.global_step, "max_steps": state.max_steps,
                       "train_rows": _rows(train_dataloader),
                       "effective_batch": args.per_device_train_batch_size * args.world_size
                       * args.gradient_accumulation_steps, "per_device": args.per_device_train_batch_size,
                       "workers": args.world_size, "accumulation": args.gradient_accumulation_steps})

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.emit({"event": "step", "step": state.global_step})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.emit({"event": "log", "step": state.global_step,
                       "logs": {k: v for k, v in logs.items() if isinstance(v, (int, float))}})

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.emit({"event": "end", "step": state.global_step})
