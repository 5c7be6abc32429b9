"""A rerun of a Ray Train run name resumes only with the config it was started with."""

import json

import pytest

from sqlfoundry.config import ConfigError
from sqlfoundry.storage.backends import open_store
from sqlfoundry.training.resume import RUN_FILE, differing_keys, prepare_run_state, trained_config
from test_training import tiny_config


@pytest.mark.parametrize("override, changes_weights", [
    ("training.learning_rate=0.001", True),
    ("training.max_steps=99", True),  # the schedule depends on it
    ("lora.r=4", True),
    ("loraplus.ratio=16", True),
    ("neftune.alpha=1", True),
    ("data.seed=9", True),
    ("model.name_or_path=other", True),
    ("training.logging_steps=7", False),
    ("training.eval_steps=3", False),
    ("training.save_steps=3", False),
    ("training.final_generation_samples=0", False),
    ("output.dir=/elsewhere", False),
    ("output.push_to=/some/registry", False),
    ("ray.num_workers=2", True),  # the effective batch and the data sharding
    ("ray.use_gpu=true", True),  # precision
    ("ray.max_failures=3", False),
    ("ray.checkpoints_to_keep=5", False),
])
def test_which_keys_shape_the_weights(tmp_path, override, changes_weights):
    base = tiny_config(tmp_path, tmp_path / "out")
    changed = tiny_config(tmp_path, tmp_path / "out", override)
    assert bool(differing_keys(trained_config(base), trained_config(changed))) is changes_weights
    if changes_weights:
        assert differing_keys(trained_config(base), trained_config(changed)) == [override.split("=")[0]]


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "ray")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ray"


def test_changed_config_is_refused_fresh_deletes_anyway_records(tmp_path, storage):
    first = tiny_config(tmp_path, tmp_path / "out", f"ray.storage_path={storage}")
    assert prepare_run_state(first, "run") is None  # new run: recorded
    store = open_store(storage)
    store.put_bytes(b"{}", "run/checkpoint_000001/trainer_state.json")  # as Ray Train would leave it
    assert prepare_run_state(first, "run") is None  # same config: resume as usual
    assert store.get_bytes("run/checkpoint_000001/trainer_state.json") == b"{}"

    changed = tiny_config(tmp_path, tmp_path / "out", f"ray.storage_path={storage}", "training.learning_rate=0.001")
    with pytest.raises(ConfigError, match=r"training.learning_rate \(0.003 -> 0.001\).*--fresh.*--resume-anyway"):
        prepare_run_state(changed, "run")
    assert json.loads(store.get_bytes(f"run/{RUN_FILE}"))["trained_config"]["training.learning_rate"] == 0.003

    resumed = prepare_run_state(changed, "run", "anyway")
    assert resumed["differing_keys"] == ["training.learning_rate"]
    assert resumed["earlier_config"]["training.learning_rate"] == 0.003
    assert json.loads(store.get_bytes(f"run/{RUN_FILE}"))["trained_config"]["training.learning_rate"] == 0.001

    again = tiny_config(tmp_path, tmp_path / "out", f"ray.storage_path={storage}", "lora.r=4")
    assert prepare_run_state(again, "run", "fresh") is None
    assert store.list("run/") == [f"run/{RUN_FILE}"]  # the old checkpoints are gone
    assert prepare_run_state(again, "run") is None


def test_checkpoints_without_a_recorded_config_need_a_decision(tmp_path, storage):
    """A run from before configs were recorded: neither resumed silently nor left behind by --fresh."""
    config = tiny_config(tmp_path, tmp_path / "out", f"ray.storage_path={storage}")
    store = open_store(storage)
    store.put_bytes(b"{}", "old/checkpoint_000001/trainer_state.json")
    with pytest.raises(ConfigError, match="no record of the config.*--fresh.*--resume-anyway"):
        prepare_run_state(config, "old")
    assert prepare_run_state(config, "old", "anyway")["differing_keys"] == ["(not recorded)"]
    store.delete(f"old/{RUN_FILE}")
    assert prepare_run_state(config, "old", "fresh") is None
    assert store.list("old/") == [f"old/{RUN_FILE}"]  # the unrecorded checkpoints are gone
