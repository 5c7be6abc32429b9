import json

import pytest

from sqlfoundry.config import ConfigError, apply_overrides, parse_config
from sqlfoundry.training import train


def tiny_config(model_dir, out, *overrides, source="synthetic://400"):
    raw = {
        "model": {"name_or_path": str(model_dir)},
        "lora": {"r": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                           "up_proj", "down_proj"]},
        "loraplus": {"ratio": 4},
        "data": {"source": source, "eval_size": 16, "seed": 1},
        "training": {"learning_rate": 3e-3, "max_steps": 30, "eval_steps": 15, "save_steps": 15,
                     "logging_steps": 1, "per_device_batch_size": 8, "max_length": 256, "warmup_steps": 0,
                     "lr_scheduler": "constant"},
        "output": {"dir": str(out)},
    }
    return parse_config(apply_overrides(raw, list(overrides)))


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_over_30_steps_and_outputs_are_saved(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    result = train(tiny_config(tiny_model_dir, out, "training.final_generation_samples=4"))
    losses = [r["loss"] for r in _records(out) if "loss" in r]
    evals = [r["eval_loss"] for r in _records(out) if "eval_loss" in r]
    assert result.global_step == 30 and len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    assert evals[-1] < evals[0]
    for name in ("adapter/adapter_model.safetensors", "adapter/adapter_config.json", "adapter/tokenizer.json",
                 "adapter/sqlfoundry_model.json", "adapter/examples.jsonl", "config.yaml", "data_report.json",
                 "metrics.jsonl", "run_info.json", "result.json"):
        assert (out / name).is_file(), name
    saved = parse_config(__import__("yaml").safe_load((out / "config.yaml").read_text()))
    assert saved.training.max_steps == 30
    assert len(result.generation_samples) == 4 and result.generation_exact_match is not None
    executed = [s["execution_match"] for s in result.generation_samples if s["execution_match"] is not None]
    assert executed and all(isinstance(match, bool) for match in executed)  # synthetic golds mostly run
    assert result.generation_execution_accuracy == sum(executed) / len(executed)
    assert result.tokens_per_second > 0
    # a finished run is never silently overwritten
    with pytest.raises(ConfigError, match="output.overwrite"):
        train(tiny_config(tiny_model_dir, out))


def test_early_stopping_ends_a_diverging_run(tiny_model_dir, tmp_path):
    out = tmp_path / "diverge"
    config = tiny_config(tiny_model_dir, out, "training.learning_rate=3.0", "training.max_steps=40",
                         "training.eval_steps=2", "training.save_steps=2", "training.early_stopping_patience=1")
    result = train(config)
    assert result.global_step < 40


def test_packing_with_neftune_trains(tiny_model_dir, tmp_path):
    out = tmp_path / "packed"
    result = train(tiny_config(tiny_model_dir, out, "training.packing=on", "training.max_steps=3",
                               "training.eval_steps=3", "training.save_steps=3", "neftune.alpha=5"))
    assert result.global_step == 3 and result.eval_loss is not None


def test_bad_rows_are_counted_and_reported(tiny_model_dir, tmp_path):
    from sqlfoundry.data.synth import generate_rows

    rows = generate_rows(120, seed=4)
    rows[0]["context"] = "DROP TABLE everything"
    rows[1]["answer"] = ""
    del rows[2]["question"]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "bad-rows"
    train(tiny_config(tiny_model_dir, out, "training.max_steps=2", "training.eval_steps=2",
                      "training.save_steps=2", "training.max_length=1024", source=str(data)))
    report = json.loads((out / "data_report.json").read_text())
    assert report["dropped"] == {"context_not_create_table": 1, "empty_answer": 1, "missing_question": 1}
    assert report["rows_read"] == 120


def test_train_cli_reports_a_remote_run_without_metrics(tmp_path, monkeypatch, capsys):
    """Rank 0 on another node (head with CPU: 0): Ray returns no train_loss / tokens/s / adapter path."""
    import sqlfoundry.training.ray_train as ray_train
    from sqlfoundry.cli import main
    from sqlfoundry.training.recipe import TrainResult

    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"data: {{source: 'synthetic://40'}}\noutput: {{dir: '{tmp_path / 'out'}'}}\n")
    remote = TrainResult(output_dir=str(tmp_path), adapter_dir="", global_step=30, train_loss=None,
                         eval_loss=0.25, tokens_per_second=None, train_runtime_s=None)
    monkeypatch.setattr(ray_train, "train_with_ray", lambda config, resume="check", progress=None: remote)
    assert main(["train", "--config", str(config_file)]) == 0
    printed = capsys.readouterr().out
    assert "train loss n/a, eval loss 0.2500, steps 30, n/a tokens/s" in printed
    assert "adapter saved to" not in printed


def test_training_curve_skips_cut_lines_and_keeps_the_last_record_of_a_step(tmp_path):
    from sqlfoundry.training.callbacks import training_curve

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join([
        json.dumps({"step": 5, "loss": 1.0}), json.dumps({"step": 10, "loss": 0.8}),
        json.dumps({"step": 10, "eval_loss": 0.9}), '{"step": 15, "lo',  # a worker died mid-write
        json.dumps({"step": 10, "loss": 0.7}), json.dumps({"step": 15, "loss": 0.5, "train_runtime": 3.0}),
    ]) + "\n")
    assert training_curve(metrics) == [{"step": 5, "loss": 1.0}, {"step": 10, "loss": 0.7, "eval_loss": 0.9},
                                       {"step": 15, "loss": 0.5}]
    assert training_curve(tmp_path / "missing.jsonl") == []
