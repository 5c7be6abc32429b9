"""Resuming a Ray Train run only with the config it was started with.

Ray Train resumes any rerun with the same `ray.run_name` and `ray.storage_path` from its latest
checkpoint, whatever the new config says: a changed learning rate would silently train on the old
weights and push them under the new config. So each run records the config that shapes its weights
next to Ray's own state (`<storage_path>/<run_name>/sqlfoundry_run.json`), and a rerun whose
config differs in any such key is refused, naming the keys, unless the caller asks to start fresh
(the old run's state is deleted) or to resume anyway (the manifest then records both configs).
"""

from __future__ import annotations

import json
import logging
import shutil
from typing import Literal

from sqlfoundry.config.loader import ConfigError
from sqlfoundry.config.schema import RunConfig
from sqlfoundry.storage.backends import LocalStore, open_store

log = logging.getLogger(__name__)

RUN_FILE = "sqlfoundry_run.json"
ResumeMode = Literal["check", "fresh", "anyway"]

# Sections and keys that cannot change the trained weights: where results go, how often to log or
# save, what to measure afterwards. Everything else (model, quantization, lora, loraplus, neftune,
# data, the rest of training) does, and must match for a resume.
_SECTIONS_NOT_TRAINED = ("output", "tune")
_KEYS_NOT_TRAINED = {
    # Ray settings that place or restart workers; num_workers (the effective batch and data
    # sharding), use_gpu and resources_per_worker (precision, threads) do shape the weights.
    "ray.accelerator_type", "ray.storage_path", "ray.run_name", "ray.checkpoints_to_keep", "ray.max_failures",
    "ray.address",
    "training.logging_steps", "training.eval_steps", "training.save_steps", "training.save_total_limit",
    "training.report_to", "training.final_generation_samples", "training.max_new_tokens", "training.threads",
}


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def trained_config(config: RunConfig) -> dict[str, object]:
    """The dotted keys of `config` that shape the trained weights, with their values."""
    dump = {k: v for k, v in config.model_dump(mode="json").items() if k not in _SECTIONS_NOT_TRAINED}
    return {k: v for k, v in _flatten(dump).items() if k not in _KEYS_NOT_TRAINED}


def differing_keys(before: dict, after: dict) -> list[str]:
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def prepare_run_state(config: RunConfig, run_name: str, mode: ResumeMode = "check") -> dict | None:
    """Check a rerun against the config the run was started with, then record the current one.

    Returns None for a new run (or a resume with the same config), or `{"earlier_config": ...,
    "differing_keys": [...]}` when resuming anyway with a changed config. Raises ConfigError when
    the config changed and `mode` is "check"."""
    store = open_store(config.ray.storage_path)
    key = f"{run_name}/{RUN_FILE}"
    current = trained_config(config)
    earlier_bytes = store.get_bytes(key)
    earlier_state = earlier_bytes is not None or bool(store.list(f"{run_name}/"))
    resumed = None
    if earlier_bytes is None and earlier_state and mode == "check":
        # Checkpoints without a recorded config (a run from before this check, or a lost file):
        # nothing tells whether the config changed, so the caller must say what they want.
        raise ConfigError(
            f"ray.run_name {run_name!r} in {config.ray.storage_path} has checkpoints but no record of the config "
            "they were trained with. Rerun with --fresh to start over (deletes that run's checkpoints), "
            "choose another ray.run_name, or pass --resume-anyway to continue it with this config.")
    if earlier_state and mode == "fresh":
        if isinstance(store, LocalStore):  # folders too: Ray reads an empty checkpoint folder as one
            shutil.rmtree(store.root / run_name)
        else:
            for stale_key in store.list(f"{run_name}/"):
                store.delete(stale_key)
        log.info("--fresh: deleted the earlier run %r in %s", run_name, config.ray.storage_path)
    elif earlier_bytes is None and earlier_state:  # resume anyway, with nothing to compare against
        resumed = {"earlier_config": None, "differing_keys": ["(not recorded)"]}
    elif earlier_bytes is not None:
        earlier = json.loads(earlier_bytes)["trained_config"]
        changed = differing_keys(earlier, current)
        if changed and mode == "check":
            shown = ", ".join(f"{k} ({earlier.get(k)!r} -> {current.get(k)!r})" for k in changed[:8])
            more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
            raise ConfigError(
                f"ray.run_name {run_name!r} in {config.ray.storage_path} was started with another config: {shown}"
                f"{more}. Resuming would train the old weights under the new config. Rerun with --fresh to "
                "start over (deletes that run's checkpoints), choose another ray.run_name, or pass "
                "--resume-anyway to continue the old run with the new settings.")
        if changed:
            log.warning("resuming run %r anyway with changed keys: %s", run_name, ", ".join(changed))
            resumed = {"earlier_config": earlier, "differing_keys": changed}
        else:
            return None  # same config: the run file already says it
    store.put_bytes(json.dumps({"run_name": run_name, "trained_config": current}, indent=2).encode(), key)
    return resumed
