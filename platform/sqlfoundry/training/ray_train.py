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
from pathlib import Path
from urllib.parse import urlparse

from sqlfoundry.config.loader import ConfigError
from sqlfoundry.config.schema import RunConfig
from sqlfoundry.storage.backends import absolute_local_path
from sqlfoundry.training.recipe import TrainResult, check_runtime
from sqlfoundry.training.resume import ResumeMode, prepare_run_state

log = logging.getLogger(__name__)

# Ray binds the eth0 address and patches print() in workers unless told otherwise.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}


def _worker(loop_config: dict) -> None:
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback

    from sqlfoundry.training.recipe import train

    config = RunConfig.model_validate(loop_config["config"])
    checkpoint = ray.train.get_checkpoint()
    threads = max(1, int(config.ray.resources_per_worker.get("CPU", 1)))
    common = {"extra_callbacks": [RayTrainReportCallback()], "threads": threads,
              "resumed_with_changes": loop_config.get("resumed_with_changes")}
    if checkpoint is None:
        train(config, **common)
        return
    with checkpoint.as_directory() as folder:
        hf_checkpoint = Path(folder) / RayTrainReportCallback.CHECKPOINT_NAME
        log.info("resuming from %s", hf_checkpoint)
        train(config, resume_from_checkpoint=str(hf_checkpoint), **common)


def storage_for_ray(storage_path: str):
    """(storage_path, storage_filesystem) for ray.train.RunConfig; S3 endpoints from AWS_ENDPOINT_URL."""
    parsed = urlparse(storage_path)
    if parsed.scheme == "s3":
        from sqlfoundry.storage.backends import S3Store

        S3Store(storage_path).check()  # missing bucket or credentials fail here, before any work
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            return storage_path, None
        import pyarrow.fs

        url = urlparse(endpoint)
        filesystem = pyarrow.fs.S3FileSystem(endpoint_override=url.netloc, scheme=url.scheme or "https",
                                             region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        return f"{parsed.netloc}{parsed.path}", filesystem
    if parsed.scheme not in ("", "file"):
        raise ConfigError(f"ray.storage_path {storage_path}: unsupported scheme {parsed.scheme!r} "
                          "(use a folder or s3://bucket/prefix)")
    return str(Path(parsed.path if parsed.scheme else storage_path).expanduser().resolve()), None


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """A copy whose local paths are absolute: Ray workers and Tune trials run in their own working
    directories, where a relative `outputs/registry` would land somewhere else entirely."""
    config = config.model_copy(deep=True)
    config.output.dir = absolute_local_path(config.output.dir)
    config.output.push_to = absolute_local_path(config.output.push_to)
    config.data.source = absolute_local_path(config.data.source, only_if_exists=True)
    config.data.exclude = [absolute_local_path(path, only_if_exists=True) for path in config.data.exclude]
    config.model.name_or_path = absolute_local_path(config.model.name_or_path, only_if_exists=True)
    return config


def ensure_ray(address: str | None) -> None:
    """Join `address` (else $RAY_ADDRESS), or start an embedded local Ray; no-op when connected."""
    import ray

    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env={"env_vars": RAY_ENV})
    else:
        ray.init(runtime_env={"env_vars": RAY_ENV})  # the dashboard starts too (and the state API Ray Train polls)


def check_fits(per_unit: dict[str, float], units: int, setting: str, fix: str) -> None:
    """`units` x `per_unit` resources must fit the cluster's totals, or Ray would wait forever.
    `setting` names the config that asked for them, e.g. "ray.num_workers=4 x resources_per_worker"."""
    import ray

    total = ray.cluster_resources()
    for resource, amount in per_unit.items():
        want = amount * units
        if want > total.get(resource, 0):
            raise ConfigError(f"{setting}.{resource}={amount:g} needs {want:g} {resource}, but the cluster has "
                              f"{total.get(resource, 0):g}; {fix}")


def train_with_ray(config: RunConfig, resume: ResumeMode = "check") -> TrainResult:
    """`resume`: "check" refuses a rerun of a run name whose config changed (training/resume.py),
    "fresh" deletes the earlier run's state first, "anyway" resumes with the new config."""
    from ray.train import CheckpointConfig, FailureConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

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
    scaling = ScalingConfig(
        num_workers=config.ray.num_workers,
        use_gpu=config.ray.use_gpu,
        resources_per_worker=dict(config.ray.resources_per_worker),
        accelerator_type=config.ray.accelerator_type,
    )
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"config": config.model_dump(mode="json"), "resumed_with_changes": resumed_with_changes},
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
    ray_result = trainer.fit()
    if ray_result.error:
        raise ray_result.error
    result_file = Path(config.output.dir) / "result.json"
    if not result_file.is_file():  # rank 0 ran on another node: report what Ray collected
        metrics = ray_result.metrics or {}
        return TrainResult(output_dir=config.output.dir, adapter_dir="", global_step=int(metrics.get("step", 0)),
                           train_loss=metrics.get("train_loss"), eval_loss=metrics.get("eval_loss"),
                           tokens_per_second=None, train_runtime_s=metrics.get("train_runtime"))
    return TrainResult(**json.loads(result_file.read_text()))
