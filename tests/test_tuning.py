"""Ray Tune over the tiny model: ASHA stops a bad trial, the best adapter is pushed, results and the
plot hold the reported numbers, an interrupted search resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sqlfoundry.config import parse_config
from sqlfoundry.config.loader import ConfigError, apply_overrides
from sqlfoundry.storage.registry import Registry

GOOD, ALSO_GOOD, BAD = 3e-3, 2e-3, 1e-8  # grid order = trial order with one trial at a time


def tune_raw(model_dir, tmp_path, name="search"):
    return {
        "model": {"name_or_path": str(model_dir)},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]},
        "loraplus": {"ratio": 4},
        "neftune": {"alpha": 0},
        "data": {"source": "synthetic://300", "eval_size": 16, "seed": 1},
        "training": {"learning_rate": 3e-3, "max_steps": 8, "eval_steps": 2, "save_steps": 2, "logging_steps": 1,
                     "per_device_batch_size": 8, "max_length": 256, "lr_scheduler": "constant", "warmup_steps": 0},
        "output": {"dir": str(tmp_path / "out"), "push_to": str(tmp_path / "registry"), "adapter_name": "tuned"},
        "ray": {"storage_path": str(tmp_path / "ray")},
        "tune": {"search_space": {"training.learning_rate": {"values": [GOOD, ALSO_GOOD, BAD]}},
                 "max_concurrent_trials": 1, "resources_per_trial": {"CPU": 1}, "run_name": name,
                 "grace_period": 1, "reduction_factor": 2},
    }


def _reported(experiment: Path) -> dict[float, list[tuple[int, float]]]:
    """What each trial reported to Tune, from Tune's own per-trial result.json logs."""
    reported = {}
    for log in experiment.glob("*/result.json"):
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if lines:
            reported[lines[0]["config"]["training.learning_rate"]] = [(r["step"], r["eval_loss"]) for r in lines]
    return reported


def test_tune_stops_the_bad_trial_pushes_the_best_and_writes_results(ray_local, tiny_model_dir, tmp_path):
    from sqlfoundry.tuning.run import tune_run

    config = parse_config(tune_raw(tiny_model_dir, tmp_path))
    outcome = tune_run(config, promote="production")

    by_lr = {row["params"]["training.learning_rate"]: row for row in outcome.trials}
    assert set(by_lr) == {GOOD, ALSO_GOOD, BAD}
    assert by_lr[BAD]["stopped_early"] and by_lr[BAD]["steps_done"] < 8
    assert by_lr[GOOD]["status"] == "completed" and by_lr[GOOD]["steps_done"] == 8
    assert by_lr[GOOD]["tokens_per_second"] > 0
    completed = [r for r in outcome.trials if r["status"] == "completed"]
    assert outcome.best["final_metric"] == min(r["final_metric"] for r in completed)
    assert outcome.best["status"] == "completed"

    # The files hold exactly what the trials reported to Tune.
    saved = json.loads(Path(outcome.files["json"]).read_text())
    reported = _reported(tmp_path / "ray" / "search")
    for row in saved["trials"]:
        lr = row["params"]["training.learning_rate"]
        curve = [(c["step"], c["eval_loss"]) for c in saved["curves"][row["trial_id"]]]
        assert curve == reported[lr]
        assert row["best_eval_loss"] == min(loss for _, loss in reported[lr])
    csv_lines = Path(outcome.files["csv"]).read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("training.learning_rate,best_eval_loss")
    png = Path(outcome.files["plot"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    # The best adapter is in the registry, promoted, with the tuning results in its manifest.
    registry = Registry(str(tmp_path / "registry"))
    assert registry.aliases("tuned") == {"production": outcome.pushed_version}
    manifest = registry.manifest("tuned", outcome.pushed_version)
    assert manifest["tuning"]["best_trial"] == outcome.best["trial_id"]
    # It ships what it ranked: the ranking value is the shipped adapter's own final evaluation.
    assert manifest["tuning"]["ranking_value"] == manifest["metrics"]["eval_loss"] == outcome.best["final_metric"]
    assert manifest["tuning"]["ranked_by"] == "final evaluation of the shipped adapter"
    assert len(manifest["tuning"]["trials"]) == 3
    assert manifest["training_config"]["training"]["learning_rate"] == outcome.best["params"]["training.learning_rate"]
    assert (Path(outcome.best_adapter_dir) / "adapter_model.safetensors").is_file()


def test_execution_accuracy_metric_is_measured_at_each_evaluation(ray_local, tiny_model_dir, tmp_path):
    from sqlfoundry.tuning.run import tune_run

    raw = apply_overrides(tune_raw(tiny_model_dir, tmp_path, "ex"), [
        "tune.metric=execution_accuracy", "tune.ex_eval_rows=4", "tune.scheduler=none", "training.max_steps=4",
        "training.max_new_tokens=16", "output.push_to=null"])
    raw["tune"]["search_space"] = {"loraplus.ratio": {"values": [2]}}
    outcome = tune_run(parse_config(raw))
    (row,) = outcome.trials
    curve = json.loads(Path(outcome.files["json"]).read_text())["curves"][row["trial_id"]]
    assert [c["step"] for c in curve] == [2, 4, 4]  # two evaluations, then the final report
    assert all(0 <= c["execution_accuracy"] <= 1 for c in curve)
    assert outcome.best["trial_id"] == row["trial_id"] and outcome.pushed_version is None


def test_interrupted_search_resumes_instead_of_starting_over(ray_local, tiny_model_dir, tmp_path):
    from sqlfoundry.tuning.run import tune_run

    raw = tune_raw(tiny_model_dir, tmp_path, "resume")
    raw["output"]["push_to"] = None
    config_file = tmp_path / "tune.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    experiment = tmp_path / "ray" / "resume"
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "sqlfoundry.cli", "tune", "--config", str(config_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    first_done = False
    while time.monotonic() < deadline and not first_done:
        time.sleep(1)
        states = list(experiment.glob("experiment_state*.json"))
        first_done = any(s.read_text().count("TERMINATED") >= 1 for s in states)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert first_done, "the first trial never finished before the deadline"
    reports_before = {lr: len(r) for lr, r in _reported(experiment).items()}

    outcome = tune_run(parse_config(raw))
    assert outcome.restored
    assert len(outcome.trials) == 3
    reports_after = {lr: len(r) for lr, r in _reported(experiment).items()}
    # The finished trial was not run again: its reports are the same ones.
    finished = [lr for lr, count in reports_before.items() if count == 8 // 2 + 1]
    assert finished and all(reports_after[lr] == reports_before[lr] for lr in finished)


@pytest.mark.parametrize("search_space, message", [
    ({"lora.rank": {"values": [4]}}, "lora.rank is not a config key"),
    ({"training.learning_rate": {"values": [-1.0]}}, "training.learning_rate"),
    ({"loraplus.ratio": {"values": [0.5]}}, "loraplus.ratio"),
    ({"loraplus.ratio": {"sample": "uniform", "low": 4}}, "low < high"),
    ({"training.learning_rate": {"sample": "loguniform", "low": 0, "high": 1e-3}}, "low > 0"),
    ({"loraplus.ratio": {"sample": "grid"}}, "values"),
    ({}, "at least one key"),
])
def test_bad_search_spaces_fail_before_ray(tiny_model_dir, tmp_path, search_space, message):
    from sqlfoundry.tuning.space import validate_search_space

    raw = tune_raw(tiny_model_dir, tmp_path)
    raw["tune"]["search_space"] = search_space
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate_search_space(parse_config(raw))


def _row(trial_id, curve_best, final, status="completed"):
    return {"trial_id": trial_id, "status": status, "best_eval_loss": curve_best, "execution_accuracy": None,
            "final_metric": final}


@pytest.mark.parametrize("rows, metric, chosen", [
    # A's curve dipped lowest mid-run, but the adapter it ships (its final evaluation) is worse than B's.
    ([_row("A", 0.10, 0.40), _row("B", 0.20, 0.20)], "eval_loss", "B"),
    ([_row("A", None, 0.30), _row("B", None, 0.50)], "execution_accuracy", "B"),
    ([_row("A", 0.10, None, "stopped"), _row("B", 0.30, 0.30)], "eval_loss", "B"),  # stopped trials ship nothing
    ([_row("A", 0.10, None, "error")], "eval_loss", None),
])
def test_best_trial_is_ranked_by_what_it_ships(rows, metric, chosen):
    from sqlfoundry.tuning.results import best_row

    best = best_row(rows, metric)
    assert (best["trial_id"] if best else None) == chosen
