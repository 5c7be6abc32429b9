"""bench/gpu_check.py --tiny on CPU: the GPU check's own code path runs end to end, imports nothing the
GPU machine lacks, and writes sane figures; its mirrored recipe values match the reference config."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

bnb = pytest.importorskip("bitsandbytes")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
# Not installed on the GPU machine the check is written for; blocked here so an import of any of
# them (directly or through a sqlfoundry module) fails the run as it would fail there.
ABSENT_THERE = ("pydantic", "trl", "ray", "sqlglot", "datasets", "gguf")
# Runs the script as `python bench/gpu_check.py` would (its folder first on sys.path), with those
# modules blocked: a None entry in sys.modules makes `import x` raise and find_spec(x) return None.
BOOTSTRAP = (
    "import runpy, sys; sys.modules.update(dict.fromkeys({absent!r})); sys.path.insert(0, {bench!r}); "
    "sys.argv = [{script!r}, *sys.argv[1:]]; runpy.run_path({script!r}, run_name='__main__')"
)


def _run(*args: str) -> subprocess.CompletedProcess:
    code = BOOTSTRAP.format(absent=ABSENT_THERE, bench=str(SCRIPT.parent), script=str(SCRIPT))
    # The GPU run puts platform/ on PYTHONPATH instead of installing sqlfoundry; do the same.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "platform"), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    done = _run("--tiny", "--device", "cpu", "--steps", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("section", ["qlora_train", "bf16_lora_train"])
def test_training_sections_train_every_lora_tensor(report, section):
    result = report["sections"][section]
    assert "error" not in result, result.get("error")
    assert result["quantization"] == ("nf4" if section == "qlora_train" else "none")
    assert result["steps"] == 3 and len(result["step_seconds"]) == result["warmup_steps"] + 3
    assert result["tokens_per_second"] > 0 and result["mfu_frozen_base_4n"] > 0
    assert all(math.isfinite(loss) for loss in [result["initial_eval_loss"], *result["losses"]])
    assert all(math.isfinite(norm) and norm > 0 for norm in result["grad_norms"])
    # r=8 LoRA A and B on q/k/v/o in 2 layers, each with a non-zero gradient on the last step
    assert result["lora_tensors"] == 2 * 4 * 2
    assert result["lora_tensors_with_grad"] == result["lora_tensors"]


def test_generation_mixes_two_adapters_at_each_batch_size(report):
    result = report["sections"]["generation"]
    assert "error" not in result, result.get("error")
    runs = result["runs"]
    assert [run["batch_size"] for run in runs] == [1, 2, 4]
    for run in runs:
        assert run["new_tokens"] == report["shape"]["new_tokens"] and run["tokens_per_second"] > 0
    # Rows 0 and 1 hold the same prompt under different adapters: they differ only if the mixed
    # batch really applied each row's own adapter.
    assert [run["adapter_rows_differ"] for run in runs] == [None, True, True]
    assert runs[-1]["adapters"] == ["sql_a", "sql_b"]


def test_report_records_the_environment(report):
    env = report["environment"]
    assert env["device"] == "cpu" and env["attn_implementation"] == "sdpa" and env["dtype"] == "float32"
    assert env["bitsandbytes"] == bnb.__version__ and env["torch"] and env["transformers"] and env["peft"]
    assert report["matmul_peak_tflops"]["value"] > 0
    assert set(report["sections"]) == {"qlora_train", "bf16_lora_train", "generation"}


def test_mirrored_recipe_matches_the_reference_config():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from gpu_model import FULL, RECIPE
    finally:
        sys.path.remove(str(SCRIPT.parent))
    from sqlfoundry.config import load_config

    config = load_config(ROOT / "jobs/configs/opencodeinterpreter-6.7b-a100.yaml")
    assert (RECIPE.lora_r, RECIPE.lora_alpha, RECIPE.lora_dropout, list(RECIPE.target_modules)) == (
        config.lora.r, config.lora.alpha, config.lora.dropout, config.lora.target_modules)
    assert (RECIPE.loraplus_ratio, RECIPE.loraplus_embedding_lr) == (config.loraplus.ratio, config.loraplus.embedding_lr)
    assert (RECIPE.learning_rate, RECIPE.weight_decay) == (config.training.learning_rate, config.training.weight_decay)
    assert RECIPE.neftune_alpha == config.neftune.alpha
    assert (config.quantization.mode, RECIPE.double_quant) == ("nf4", config.quantization.double_quant)
    assert RECIPE.gradient_checkpointing == config.training.gradient_checkpointing
    assert (FULL.seq, FULL.rows) == (config.training.max_length, config.training.per_device_batch_size)


def test_quantized_layers_keep_the_cpu_repack_guard():
    """Every NF4 layer has bitsandbytes' avx512_bf16 repack turned off, as sqlfoundry's loader does."""
    import torch

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from gpu_model import TINY, build_model
    finally:
        sys.path.remove(str(SCRIPT.parent))
    model = build_model(TINY, "cpu", torch.float32, "sdpa", quantize=True)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 7 * TINY.layers  # q, k, v, o, gate, up, down; lm_head stays unquantized
    assert all(layer.support_avx512bf16_for_cpu is False for layer in layers)
    assert not isinstance(model.get_output_embeddings(), bnb.nn.Linear4bit)


def test_cpu_without_tiny_is_refused_naming_the_flag():
    done = _run("--device", "cpu")
    assert done.returncode == 2 and "--device cpu needs --tiny" in done.stderr


def test_help():
    done = _run("--help")
    assert done.returncode == 0 and "--tiny" in done.stdout and "make_gpu_carry.sh" in done.stdout
