"""Ray Train: 2 CPU workers, checkpoints in S3 (moto over HTTP), push/pull, worker failure, resume."""

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sqlfoundry.config import ConfigError
from sqlfoundry.storage.registry import Registry
from test_training import tiny_config

pytestmark = pytest.mark.usefixtures("ray_local")
ROOT = Path(__file__).resolve().parents[1]


def ray_config(model_dir, out, *overrides, **kwargs):
    return tiny_config(model_dir, out, "training.max_steps=4", "training.eval_steps=2", "training.save_steps=2",
                       "ray.num_workers=2", *overrides, **kwargs)


def test_two_workers_checkpoint_to_s3_and_push_adapter(tiny_model_dir, tmp_path, s3_bucket):
    from sqlfoundry.training.ray_train import train_with_ray

    out = tmp_path / "out"
    config = ray_config(tiny_model_dir, out, f"ray.storage_path=s3://{s3_bucket}/ray",
                        f"output.push_to=s3://{s3_bucket}/registry", "output.adapter_name=tiny-sql")
    events = []
    result = train_with_ray(config, progress=events.append)
    assert result.global_step == 4
    assert result.effective_batch_size == 8 * 2  # per device x workers x accumulation
    # rank 0's progress reached this process through the relay, once per step (the console's bar)
    assert events[0]["event"] == "start" and events[0]["effective_batch"] == 16 and events[0]["workers"] == 2
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4]
    assert any("eval_loss" in e.get("logs", {}) for e in events) and "end" in [e["event"] for e in events]
    registry = Registry(f"s3://{s3_bucket}/registry")
    assert registry.versions("tiny-sql") == [result.pushed_version]
    manifest = registry.manifest("tiny-sql", result.pushed_version)
    assert manifest["base_model"] == str(tiny_model_dir) and manifest["data"]["fingerprint"]
    pulled, _ = registry.pull("tiny-sql", tmp_path / "pulled")
    names = [p.name for p in (out / "adapter").iterdir()]
    match, mismatch, errors = filecmp.cmpfiles(out / "adapter", pulled, names, shallow=False)
    assert sorted(match) == sorted(names) and not mismatch and not errors
    import boto3

    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="ray/")["Contents"]]
    assert any("checkpoint" in key and key.endswith("trainer_state.json") for key in keys)


def test_worker_failure_restarts_from_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    from sqlfoundry.training.ray_train import train_with_ray

    marker = tmp_path / "failed-once"
    monkeypatch.setenv("SQLFOUNDRY_FAULT_STEP", "3")
    monkeypatch.setenv("SQLFOUNDRY_FAULT_MARKER", str(marker))
    config = ray_config(tiny_model_dir, tmp_path / "out", f"ray.storage_path={tmp_path / 'ray'}",
                        "ray.max_failures=1")
    result = train_with_ray(config)
    assert marker.exists()  # the fault really fired
    assert result.global_step == 4 and result.resumed_from_step == 2


def test_killed_driver_resumes_on_rerun(tiny_model_dir, tmp_path, ray_local):
    """Kill the driver (a `sqlfoundry train` process on this Ray) after a checkpoint; rerun resumes."""
    from sqlfoundry.training.ray_train import train_with_ray

    storage, out = tmp_path / "ray", tmp_path / "out"
    overrides = ["training.max_steps=20", "training.eval_steps=2", "training.save_steps=2", "ray.num_workers=1",
                 f"ray.storage_path={storage}", "ray.run_name=resumable", f"output.dir={out}"]
    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"model: {{name_or_path: {tiny_model_dir}}}\ndata: {{source: 'synthetic://400', "
                           "eval_size: 16}\ntraining: {per_device_batch_size: 8, max_length: 256, learning_rate: 0.003}\n")
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    driver = subprocess.Popen([sys.executable, "-m", "sqlfoundry.cli", "train", "--config", str(config_file),
                               *[arg for o in overrides for arg in ("--set", o)]], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    snapshot = storage / "resumable" / "checkpoint_manager_snapshot.json"  # written after a checkpoint registers
    while time.time() < deadline and not snapshot.is_file():
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert list(storage.glob("resumable/checkpoint_*")), "no checkpoint was written before the kill"
    deadline = time.time() + 60  # Ray reaps the dead driver's workers asynchronously: wait for their CPUs
    while time.time() < deadline and ray_local.available_resources().get("CPU", 0) < 2:
        time.sleep(0.5)

    from sqlfoundry.config import apply_overrides, parse_config
    import yaml

    config = parse_config(apply_overrides(yaml.safe_load(config_file.read_text()), overrides))
    result = train_with_ray(config)
    assert result.resumed_from_step is not None and result.resumed_from_step >= 2
    assert result.global_step == 20


@pytest.mark.parametrize("override, message", [
    ("ray.storage_path=gs://bucket/x", "unsupported scheme 'gs'"),
    ("ray.num_workers=64", "ray.num_workers=64"),
    ("output.push_to=s3://no-such-bucket-anywhere/x", "output.push_to"),
])
def test_bad_ray_settings_fail_before_training(tiny_model_dir, tmp_path, override, message):
    from sqlfoundry.training.ray_train import train_with_ray

    out = tmp_path / "out"
    with pytest.raises(Exception, match=message.replace("(", r"\(")):
        train_with_ray(ray_config(tiny_model_dir, out, override))
    assert not (out / "metrics.jsonl").exists()


def test_missing_bucket_for_checkpoints(tiny_model_dir, tmp_path):
    from sqlfoundry.storage.backends import StorageError
    from sqlfoundry.training.ray_train import train_with_ray

    with pytest.raises(StorageError, match="does not exist"):
        train_with_ray(ray_config(tiny_model_dir, tmp_path / "o", "ray.storage_path=s3://missing-bucket-zz/ray"))


def test_config_error_type():
    assert issubclass(ConfigError, ValueError)


def test_local_paths_are_made_absolute_for_workers(tmp_path, monkeypatch):
    """Workers and trials run in their own directories: relative local paths must not follow them."""
    from sqlfoundry.raylayer import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.jsonl").write_text("")
    (tmp_path / "heldout.jsonl").write_text("")
    (tmp_path / "models" / "base").mkdir(parents=True)
    config = tiny_config(tmp_path / "models" / "base", "outputs/run", "output.push_to=outputs/registry",
                         "data.source=rows.jsonl", "data.exclude=[heldout.jsonl]",
                         "model.name_or_path=models/base")
    absolute = with_absolute_paths(config)
    assert absolute.output.dir == str(tmp_path / "outputs/run")
    assert absolute.output.push_to == str(tmp_path / "outputs/registry")
    assert absolute.data.source == str(tmp_path / "rows.jsonl")
    assert absolute.data.exclude == [str(tmp_path / "heldout.jsonl")]
    assert absolute.model.name_or_path == str(tmp_path / "models/base")
    remote = with_absolute_paths(tiny_config(tmp_path, "out", "output.push_to=s3://bucket/registry",
                                             "data.source=synthetic://10", "model.name_or_path=org/model"))
    assert (remote.output.push_to, remote.data.source, remote.model.name_or_path) == (
        "s3://bucket/registry", "synthetic://10", "org/model")
    assert config.output.push_to == "outputs/registry"  # the caller's config is left alone


def test_rerun_with_changed_config_is_refused_then_resumed_anyway(tiny_model_dir, tmp_path):
    """The issue's reproduction: a finished run rerun with another learning rate must not silently
    resume the old weights; with --resume-anyway the manifest says so and tokens/s counts this run only."""
    from sqlfoundry.training.ray_train import train_with_ray

    common = ["ray.num_workers=1", f"ray.storage_path={tmp_path / 'ray'}", "ray.run_name=rerun",
              f"output.push_to={tmp_path / 'registry'}", "output.adapter_name=rerun", "output.overwrite=true"]
    first = train_with_ray(ray_config(tiny_model_dir, tmp_path / "out", *common))
    assert first.global_step == 4 and first.resumed_from_step is None

    changed = ray_config(tiny_model_dir, tmp_path / "out", *common, "training.learning_rate=0.001",
                         "training.max_steps=6")
    metrics_before = (tmp_path / "out" / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="training.learning_rate.*training.max_steps"):
        train_with_ray(changed)
    assert (tmp_path / "out" / "metrics.jsonl").read_text() == metrics_before  # refused before any work

    resumed = train_with_ray(changed, resume="anyway")
    assert resumed.resumed_from_step == 4 and resumed.global_step == 6
    first_tokens = first.tokens_per_second * first.train_runtime_s
    assert resumed.tokens_per_second * resumed.train_runtime_s < 0.75 * first_tokens  # 2 steps, not 6
    manifest = Registry(str(tmp_path / "registry")).manifest("rerun", resumed.pushed_version)
    assert manifest["training_config"]["training"]["learning_rate"] == 0.001
    assert manifest["resumed_from_step"] == 4
    assert manifest["resumed_with_changes"]["differing_keys"] == ["training.learning_rate", "training.max_steps"]
