"""Run the training recipe on Ray Train workers (TorchTrainer: gloo on CPU, nccl on GPU).

The worker function calls `sqlfoundry.training.recipe.train` unchanged; Ray Train adds the process
group, worker restarts from the latest checkpoint (FailureConfig), checkpoint upload to
`ray.storage_path` (a folder or S3), and progress in the dashboard and `ray job logs`. Rerunning with
the same `ray.run_name` and storage resumes from the latest checkpoint, optimizer and scheduler
state included.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from sqlfoundry.config.schema import RunConfig
from sqlfoundry.raylayer import check_fits, ensure_ray, relay, relay_put, storage_for_ray, with_absolute_paths
from sqlfoundry.training.recipe import TrainResult, check_runtime
from sqlfoundry.training.resume import ResumeMode, prepare_run_state

log = logging.getLogger(__name__)


def _worker(loop_config: dict) -> None:
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback

    from sqlfoundry.training.recipe import train

    # Ray forwards every worker's stdout/stderr, on any node, to the driver (log_to_driver), where the
    # quiet CLI writes it to its output.dir/train.log: the workers write no log file of their own,
    # which on a multi-node cluster would hold only what their node saw.
    logging.captureWarnings(True)
    config = RunConfig.model_validate(loop_config["config"])
    checkpoint = ray.train.get_checkpoint()
    threads = max(1, int(config.ray.resources_per_worker.get("CPU", 1)))
    callbacks = [RayTrainReportCallback()]
    if loop_config.get("progress") is not None:
        from sqlfoundry.training.progress import ProgressCallback

        callbacks.append(ProgressCallback(relay_put(loop_config["progress"])))
    common = {"extra_callbacks": callbacks, "threads": threads,
              "resumed_with_changes": loop_config.get("resumed_with_changes")}
    if checkpoint is None:
        train(config, **common)
        return
    with checkpoint.as_directory() as folder:
        hf_checkpoint = Path(folder) / RayTrainReportCallback.CHECKPOINT_NAME
        log.info("resuming from %s", hf_checkpoint)
        train(config, resume_from_checkpoint=str(hf_checkpoint), **common)


def train_with_ray(config: RunConfig, resume: ResumeMode = "check",
                   progress: Callable[[dict], None] | None = None) -> TrainResult:
    """`resume`: "check" refuses a rerun of a run name whose config changed (training/resume.py),
    "fresh" deletes the earlier run's state first, "anyway" resumes with the new config.
    `progress` gets rank 0's training events (training/progress.py) in this process, from any node."""
    check_runtime(config)  # config and storage problems surface before Ray starts any worker
    storage_path, filesystem = storage_for_ray(config.ray.storage_path)
    ensure_ray(config.ray.address)
    needed = dict(config.ray.resources_per_worker)
    if config.ray.use_gpu:
        needed.setdefault("GPU", 1)
    check_fits(needed, config.ray.num_workers,
               f"ray.num_workers={config.ray.num_workers} x resources_per_worker",
               "lower ray.num_workers or resources_per_worker, or add nodes")
    config = with_absolute_paths(config)
    run_name = config.ray.run_name or Path(config.output.dir).name
    resumed_with_changes = prepare_run_state(config, run_name, resume)
    loop_config = {"config": config.model_dump(mode="json"), "resumed_with_changes": resumed_with_changes}
    events = relay(progress) if progress else nullcontext()
    with events as queue:
        loop_config["progress"] = queue
        ray_result = _fit(config, run_name, storage_path, filesystem, loop_config)
    if ray_result.error:
        raise ray_result.error
    result_file = Path(config.output.dir) / "result.json"
    if not result_file.is_file():  # rank 0 ran on another node: report what Ray collected
        metrics = ray_result.metrics or {}
        return TrainResult(output_dir=config.output.dir, adapter_dir="", global_step=int(metrics.get("step", 0)),
                           train_loss=metrics.get("train_loss"), eval_loss=metrics.get("eval_loss"),
                           tokens_per_second=None, train_runtime_s=metrics.get("train_runtime"))
    return TrainResult(**json.loads(result_file.read_text()))


def _fit(config: RunConfig, run_name: str, storage_path: str, filesystem, loop_config: dict):
    from ray.train import CheckpointConfig, FailureConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    scaling = ScalingConfig(
        num_workers=config.ray.num_workers,
        use_gpu=config.ray.use_gpu,
        resources_per_worker=dict(config.ray.resources_per_worker),
        accelerator_type=config.ray.accelerator_type,
    )
    trainer = TorchTrainer(
        _worker,
        train_loop_config=loop_config,
        scaling_config=scaling,
        run_config=RayRunConfig(
            name=run_name,
            storage_path=storage_path,
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=config.ray.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.ray.checkpoints_to_keep),
            # sqlfoundry's own switches (cache dir, fault injection) reach the workers; secrets do not
            worker_runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("SQLFOUNDRY_")}},
        ),
    )
    log.info("Ray Train run %r: %d worker(s), storage %s", run_name, config.ray.num_workers, config.ray.storage_path)
    return trainer.fit()
