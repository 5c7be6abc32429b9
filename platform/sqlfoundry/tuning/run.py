"""`sqlfoundry tune`: search the LoRA+ ratio (and learning rate) with Ray Tune, keep the best adapter.

Each trial is the training recipe with the trial's values (tuning/trainable.py). ASHA stops trials
whose metric lags at an evaluation; the results table, CSV, JSON and plot go to output.dir; the best
completed trial's adapter is copied to output.dir/best_adapter and pushed to output.push_to with
the tuning results in its manifest. Rerunning with the same tune.run_name and ray.storage_path
restores the interrupted search (Tuner.restore) instead of starting over.
"""

from __future__ import annotations

import functools
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlfoundry.config.loader import ConfigError
from sqlfoundry.config.schema import RunConfig
from sqlfoundry.tuning.results import RANKED_BY, best_row, format_table, trial_rows, write_results
from sqlfoundry.tuning.space import evaluations_per_trial, param_space, validate_search_space

log = logging.getLogger(__name__)


@dataclass
class TuneOutcome:
    trials: list[dict]
    best: dict | None
    files: dict[str, str]
    restored: bool
    best_adapter_dir: str | None = None
    pushed_version: str | None = None
    promoted: str | None = None
    table: str = field(default="", repr=False)


def _resources(config: RunConfig) -> dict[str, float]:
    resources = dict(config.tune.resources_per_trial)
    if config.tune.accelerator_type:
        resources[f"accelerator_type:{config.tune.accelerator_type}"] = 0.001
    return resources


def tune_run(config: RunConfig, promote: str | None = None) -> TuneOutcome:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from sqlfoundry.raylayer import check_fits, ensure_ray, storage_for_ray, with_absolute_paths
    from sqlfoundry.training.recipe import check_runtime, push_adapter
    from sqlfoundry.tuning.trainable import run_trial

    validate_search_space(config)
    check_runtime(config)
    config = with_absolute_paths(config)  # trials run in their own working directories
    if promote and not config.output.push_to:
        raise ConfigError("--promote needs output.push_to (the registry to push the best adapter to)")
    storage_path, filesystem = storage_for_ray(config.ray.storage_path)
    ensure_ray(config.ray.address)
    resources = _resources(config)
    check_fits(resources, 1, "tune.resources_per_trial", "lower it or add nodes")

    metric, mode = config.tune.metric, "min" if config.tune.metric == "eval_loss" else "max"
    name = config.tune.run_name or f"tune-{Path(config.output.dir).name}"
    experiment = f"{storage_path.rstrip('/')}/{name}"
    trainable = tune.with_resources(functools.partial(run_trial, base=config.model_dump(mode="json")), resources)
    restored = tune.Tuner.can_restore(experiment, storage_filesystem=filesystem)
    if restored:
        log.info("restoring the interrupted search %s", experiment)
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True,
                                   storage_filesystem=filesystem)
    else:
        # +1: the final report (finished adapter) comes after the last evaluation; ASHA would
        # otherwise stop every trial at its last evaluation and the adapter would never be reported.
        max_t = evaluations_per_trial(config) + 1
        scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=config.tune.grace_period,
                                   reduction_factor=config.tune.reduction_factor)
                     if config.tune.scheduler == "asha" else FIFOScheduler())
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(config),
            tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=scheduler,
                                        num_samples=config.tune.num_samples,
                                        max_concurrent_trials=config.tune.max_concurrent_trials),
            run_config=tune.RunConfig(
                name=name, storage_path=storage_path, storage_filesystem=filesystem,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=max(config.ray.max_failures, 0)),
                verbose=1,
            ),
        )
    grid = tuner.fit()

    keys = list(config.tune.search_space)
    rows, curves = trial_rows(grid, keys, metric)
    best = best_row(rows, metric)
    out = Path(config.output.dir)
    files = write_results(out, rows, curves, keys, metric, best)
    table = format_table(rows, keys)
    print(f"\nTuning results ({metric}, {mode}); best trial: {best['trial_id'] if best else 'none completed'}\n{table}\n",
          flush=True)
    outcome = TuneOutcome(trials=[{k: v for k, v in r.items() if k != "checkpoint"} for r in rows], best=None,
                          files={k: str(v) for k, v in files.items()}, restored=restored, table=table)
    if best is None:
        log.warning("no trial completed; nothing to push")
        return outcome
    outcome.best = {k: v for k, v in best.items() if k != "checkpoint"}
    best_dir = out / "best_adapter"
    if best_dir.exists():
        shutil.rmtree(best_dir)
    best["checkpoint"].to_directory(str(best_dir))
    outcome.best_adapter_dir = str(best_dir)
    if config.output.push_to:
        from sqlfoundry.storage.registry import Registry
        from sqlfoundry.tuning.space import trial_config

        best_config = trial_config(config, best["params"], config.output.dir)
        best_config.output.push_to = config.output.push_to
        final = grid[rows.index(best)].metrics  # rows follow the result grid's order
        outcome.pushed_version = push_adapter(
            best_config, best_dir,
            {"eval_loss": final.get("eval_loss"), "execution_accuracy": final.get("execution_accuracy"),
             "global_step": final.get("step")},
            {"fingerprint": final.get("data_fingerprint")},
            extra={"tuning": {"experiment": experiment, "metric": metric, "mode": mode, "best_trial": best["trial_id"],
                              "ranked_by": RANKED_BY, "ranking_value": best["final_metric"],
                              "search_space": {k: v.model_dump() for k, v in config.tune.search_space.items()},
                              "trials": outcome.trials}},
        )
        if promote:
            Registry(config.output.push_to).promote(config.output.adapter_name, outcome.pushed_version, promote)
            outcome.promoted = promote
            log.info("promoted %s@%s to %r", config.output.adapter_name, outcome.pushed_version, promote)
    return outcome

