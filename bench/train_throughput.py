"""Training throughput of the quickstart config: trained tokens/s and model FLOP utilization (MFU).

MFU is measured against a matmul peak taken in the same run, on the same threads and dtype, so the
ratio holds on a noisy machine. Also compares padded batches with padding-free packing, the choice
`training.packing: auto` makes. Run it alone on the machine (another busy process halves the cores).

    .venv/bin/python bench/train_throughput.py [--steps 8] [--out bench/results/train_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def model_flops_per_token(config, seq_len: int) -> dict[str, float]:
    """PaLM-style accounting: 6N (+ attention) for full training; 4N when the base is frozen (LoRA)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    if config.tie_word_embeddings:
        params += config.vocab_size * config.hidden_size  # the tied lm_head matmul still runs
    params -= config.vocab_size * config.hidden_size  # the embedding lookup is no matmul
    attention = 12 * config.num_hidden_layers * config.hidden_size * seq_len
    return {"params_in_matmuls": params, "full_6n": 6 * params + attention,
            "frozen_base_4n": 4 * params + attention * 2 / 3}


def run(steps: int, packing: str) -> dict:
    from sqlfoundry.config import load_config
    from sqlfoundry.training import train

    with tempfile.TemporaryDirectory() as out:
        config = load_config(ROOT / "jobs/configs/quickstart.yaml", [
            f"training.max_steps={steps}", f"training.eval_steps={steps}", f"training.save_steps={steps}",
            "training.final_generation_samples=0", f"training.packing={packing}", f"output.dir={out}",
            "data.eval_size=8",
        ])
        result = train(config)
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    seen = max(r.get("num_input_tokens_seen", 0) for r in rows)
    return {"packing": packing, "steps": result.global_step, "tokens": seen,
            "train_runtime_s": result.train_runtime_s, "tokens_per_second": seen / result.train_runtime_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "bench/results/train_throughput.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from sqlfoundry.modeling.builtin import resolve_model_path
    from sqlfoundry.modeling.loading import bf16_supported, set_cpu_threads
    from transformers import AutoConfig

    threads = set_cpu_threads()
    bf16 = bf16_supported("cpu")
    dtype = torch.bfloat16 if bf16 else torch.float32
    peak_before = matmul_peak_gflops(dtype)
    runs = [run(args.steps, "off"), run(args.steps, "on")]
    peak_after = matmul_peak_gflops(dtype)
    peak = max(peak_before, peak_after)

    model_config = AutoConfig.from_pretrained(resolve_model_path("smollm2-135m-instruct"))
    # Useful attention work is per example (the masked cross-example work of packing on sdpa is
    # waste, not model FLOPs), so both runs use the mean example length of the padded run.
    mean_example_tokens = runs[0]["tokens"] / (runs[0]["steps"] * 8)
    flops = model_flops_per_token(model_config, int(mean_example_tokens))
    for entry in runs:
        entry["mfu_6n"] = entry["tokens_per_second"] * flops["full_6n"] / (peak * 1e9)
        entry["mfu_frozen_base_4n"] = entry["tokens_per_second"] * flops["frozen_base_4n"] / (peak * 1e9)
    results = {
        "benchmark": "train_throughput",
        "config": "jobs/configs/quickstart.yaml (SmolLM2-135M-Instruct, LoRA r16 all linear, batch 8)",
        "data": "synthetic://2000 (the quickstart's synthetic rows)",
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": threads,
                    "cpus": os.cpu_count(), "torch": torch.__version__, "compute_dtype": str(dtype)},
        "matmul_peak_gflops": {"before": peak_before, "after": peak_after, "used": peak},
        "mean_example_tokens": mean_example_tokens,
        "model_flops_per_token": flops,
        "runs": runs,
        "packing_speed_ratio_on_vs_off": runs[1]["tokens_per_second"] / runs[0]["tokens_per_second"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
