from pathlib import Path

import pytest

from sqlfoundry.cli import main
from sqlfoundry.config import ConfigError, apply_overrides, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "jobs" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    load_config(path)


@pytest.mark.parametrize("path", sorted((ROOT / "jobs" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_build_a_trainer_config(path, tmp_path):
    """What validation alone cannot see: transformers/TRL refuse some combinations only when the
    trainer is configured (e.g. early stopping needs save_steps to be a multiple of eval_steps)."""
    from sqlfoundry.training.recipe import _sft_config

    config = load_config(path)
    sft = _sft_config(config, tmp_path, use_bf16=False, device="cpu")
    assert sft.max_steps == config.training.max_steps and sft.completion_only_loss
    assert config.data.augment.enabled  # realistic schemas: see README "Data"


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"training": {"max_stepz": 5}}, "training.max_stepz"),
        ({"lora": {"r": 0}}, "lora.r"),
        ({"lora": {"r": -4}}, "lora.r"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout"),
        ({"lora": {"target_modules": []}}, "lora.target_modules"),
        ({"loraplus": {"ratio": 0.5}}, "loraplus.ratio"),
        ({"loraplus": {"embedding_lr": -1}}, "loraplus.embedding_lr"),
        ({"training": {"learning_rate": -1e-4}}, "training.learning_rate"),
        ({"training": {"learning_rate": 0}}, "training.learning_rate"),
        ({"training": {"max_steps": 0}}, "training.max_steps"),
        ({"training": {"per_device_batch_size": 0}}, "training.per_device_batch_size"),
        ({"training": {"bf16": "maybe"}}, "training.bf16"),
        ({"training": {"report_to": ["mlflow"]}}, "training.report_to.0"),
        ({"neftune": {"alpha": -1}}, "neftune.alpha"),
        ({"quantization": {"mode": "int3"}}, "quantization.mode"),
        ({"data": {"eval_size": 1.5}}, "data.eval_size"),
        ({"data": {"eval_size": 0}}, "data.eval_size"),
        ({"data": {"system_prompt": "no slot here"}}, "data.system_prompt"),
        ({"data": {"columns": {"sql": "answer"}}}, "data.columns.sql"),
        ({"data": {"augment": {"distractor_columns": [4, 1]}}}, "data.augment.distractor_columns"),
        ({"data": {"augment": {"distractor_columns": -1}}}, "data.augment.distractor_columns"),
        ({"data": {"augment": {"distractor_columns": 99}}}, "data.augment.distractor_columns"),
        ({"data": {"augment": {"distractor_columns": [1, 2, 3]}}}, "data.augment.distractor_columns"),
        ({"data": {"augment": {"distractor_tables": [0, 9]}}}, "data.augment.distractor_tables"),
        ({"data": {"augment": {"probability": 1.5}}}, "data.augment.probability"),
        ({"data": {"augment": {"max_table_columns": 0}}}, "data.augment.max_table_columns"),
        ({"data": {"augment": {"verify_databases": 0}}}, "data.augment.verify_databases"),
        ({"data": {"augment": {"distractor_colums": 2}}}, "data.augment.distractor_colums"),
        ({"data": {"augment": {"enabled": "sometimes"}}}, "data.augment.enabled"),
        ({"data": {"mix": {"spider": 2.0}}}, "data.mix.spider.[key]"),
        ({"data": {"mix": {"named": -1}}}, "data.mix"),
        ({"data": {"mix": {"named": 0, "wikisql": 0}}}, "data.mix"),
        ({"model": {"trust_remote_code": "please"}}, "model.trust_remote_code"),
        ({"modle": {}}, "modle"),
        ({"training": {"early_stopping_patience": 1, "eval_steps": 30, "save_steps": 20}}, "training"),
    ],
)
def test_bad_config_is_rejected_with_key_path(raw, key):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert f"  {key}:" in str(err.value)


def test_defaults_are_secure():
    assert parse_config({}).model.trust_remote_code is False


def test_overrides_parse_yaml_scalars():
    raw = apply_overrides({"training": {"max_steps": 5}}, [
        "training.max_steps=50", "lora.target_modules=[q_proj, v_proj]", "training.bf16=off", "data.sample_size=null"])
    config = parse_config(raw)
    assert config.training.max_steps == 50
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert config.training.bf16 == "off" and config.data.sample_size is None


@pytest.mark.parametrize("override", ["training.max_steps", "=3", "training.max_steps.x=1"])
def test_malformed_overrides(override):
    with pytest.raises(ConfigError):
        load_config(ROOT / "jobs/configs/quickstart.yaml", [override])


def test_cli_rejects_bad_config_before_any_work(tmp_path, capsys):
    out = tmp_path / "never-created"
    code = main(["train", "--config", str(ROOT / "jobs/configs/quickstart.yaml"),
                 "--set", "lora.r=0", "--set", f"output.dir={out}"])
    assert code == 2
    assert "lora.r" in capsys.readouterr().err
    assert not out.exists()


def test_cli_help_explains_every_command(capsys):
    for argv in (["--help"], ["train", "--help"], ["generate", "--help"], ["data", "synth", "--help"],
                 ["data", "prepare", "--help"], ["models", "resolve", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        assert len(capsys.readouterr().out) > 200


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ([1, 4], (1, 4)), (0, (0, 0))])
def test_augment_counts_take_a_count_or_a_range(value, expected):
    raw = apply_overrides({}, [f"data.augment.distractor_columns={value}"])
    assert parse_config(raw).data.augment.distractor_columns == expected
