"""GPU check of sqlfoundry's Ray-free core on a randomly initialized model of deepseek-coder-6.7B's shape.

Sections, each written to the JSON as soon as it finishes (a failure is recorded as its error string
and the next section still runs):
  qlora_train       NF4 (double quant) base + LoRA, LoRA+ optimizer, NEFTune: tokens/s, peak memory, MFU
  bf16_lora_train   the same steps on a bf16 base without quantization, for comparison
  generation        greedy generation tokens/s at several batch sizes, two LoRA adapters mixed per batch
MFU is taken against a bf16 matmul peak measured in the same run. The hyperparameters are those of
jobs/configs/opencodeinterpreter-6.7b-a100.yaml (bench/gpu_model.py builds the model and adapters).

The GPU machine has torch, transformers and peft but no pydantic, trl, ray or bitsandbytes: this
imports those three, bitsandbytes (carried), sqlfoundry.modeling.neftune and the sibling bench
scripts gpu_model.py and train_throughput.py. On a CPU (--tiny) everything runs in fp32,
bf16_lora_train included: that run checks the code path, not speed.

    .venv/bin/python bench/gpu_check.py --tiny            # CPU, tiny shapes, same code path (~15 s idle)
    bench/make_gpu_carry.sh                               # once: outputs/gpu_carry/bitsandbytes (~5 MB)
    # then on the GPU machine, with the `run` tool (carry: ["outputs/gpu_carry"], timeout_s: 540):
    PYTHONPATH=outputs/gpu_carry:platform PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT/gpu_check.json
    # and copy the returned gpu_check.json to bench/results/gpu_check.json
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import re
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import torch

from gpu_model import FULL, MAX_GRAD_NORM, RECIPE, TINY, Shape, attention_implementation, autocast, build_model
from gpu_model import llama_config, lora_config, loraplus_optimizer, trainable_lora
from sqlfoundry.modeling.neftune import NEFTune  # torch only
from train_throughput import model_flops_per_token  # sibling bench script, torch only at import

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("qlora_train", "bf16_lora_train", "generation")


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak_tflops(device: str, dtype: torch.dtype, size: int, repeats: int = 50) -> float:
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    for _ in range(25):  # warm-up: kernel choice and, on a GPU, clocks ramping up from idle
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def packed_batch(shape: Shape, device: str, generator: torch.Generator, flatten: bool) -> tuple[dict, float]:
    """`rows` rows of `seq` tokens, each packed with examples of sql-create-context-like lengths;
    position_ids restart at 0 per example, so attention stays within it, and each example's first
    token has no label. Returns (model inputs, mean example length)."""
    ids, positions, labels, lengths = [], [], [], []
    for _ in range(shape.rows):
        row_lengths, total = [], 0
        while total < shape.seq:
            length = min(int(torch.randint(shape.seq // 24, shape.seq // 8 + 1, (1,), generator=generator)),
                         shape.seq - total)
            row_lengths.append(length)
            total += length
        row = torch.randint(3, shape.vocab, (shape.seq,), generator=generator)
        row_labels = row.clone()
        row_labels[torch.tensor([0, *row_lengths[:-1]]).cumsum(0)] = -100
        ids.append(row)
        labels.append(row_labels)
        positions.append(torch.cat([torch.arange(n) for n in row_lengths]))
        lengths += row_lengths
    batch = {"input_ids": torch.stack(ids), "position_ids": torch.stack(positions), "labels": torch.stack(labels)}
    if flatten:
        # TRL's padding-free collator (the recipe's packing) puts the whole batch in one row, which
        # flash attention splits by position_ids. sdpa would turn that row into one dense mask over
        # rows x seq tokens (rows times the attention work), so there the rows stay separate.
        batch = {key: value.reshape(1, -1) for key, value in batch.items()}
    return {key: value.to(device) for key, value in batch.items()}, sum(lengths) / len(lengths)


def gib(value: int) -> float:
    return round(value / 2**30, 3)


def reset_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: str) -> dict:
    if device != "cuda":
        return {"peak_allocated_gib": None, "peak_reserved_gib": None}
    return {"peak_allocated_gib": gib(torch.cuda.max_memory_allocated()),
            "peak_reserved_gib": gib(torch.cuda.max_memory_reserved())}


def train_section(shape: Shape, device: str, dtype: torch.dtype, attn: str, steps: int, warmup: int,
                  quantized: bool, peak_tflops: float, budget_s: float) -> dict:
    """`warmup` untimed and `steps` timed steps; fewer timed steps when the section runs past `budget_s`."""
    started = time.perf_counter()
    reset_memory(device)
    model = build_model(shape, device, dtype, attn, quantize=quantized)
    weights = gib(torch.cuda.memory_allocated()) if device == "cuda" else None
    model = trainable_lora(model, quantized)
    optimizer = loraplus_optimizer(model)
    neftune = NEFTune.attach(model, RECIPE.neftune_alpha)
    trainable = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(1)
    flatten = attn == "flash_attention_2"

    batch, mean_example = packed_batch(shape, device, generator, flatten)
    model.eval()
    with torch.no_grad(), autocast(device, dtype):
        initial_loss = model(**batch).loss.item()
    model.train()
    losses, seconds, grad_norms = [], [], []
    for _ in range(warmup + steps):
        batch, _ = packed_batch(shape, device, generator, flatten)
        sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = model(**batch).loss
        loss.backward()
        grad_norms.append(float(torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)))
        optimizer.step()
        losses.append(loss.item())
        sync(device)
        seconds.append(time.perf_counter() - start)
        if len(seconds) > warmup and time.perf_counter() - started > budget_s:
            break
    neftune.detach()
    # LoRA B starts at zero, so A gets no gradient on the first step; after it every LoRA tensor must.
    lora = [p for name, p in model.named_parameters() if "lora_" in name]
    with_grad = sum(p.grad is not None and bool(p.grad.count_nonzero()) for p in lora)
    tokens_per_step, steps = shape.rows * shape.seq, len(seconds) - warmup
    tokens_per_second = tokens_per_step * steps / sum(seconds[warmup:])
    flops = model_flops_per_token(llama_config(shape, attn), int(mean_example))
    return {
        "quantization": "nf4" if quantized else "none", "compute_dtype": str(dtype).removeprefix("torch."),
        "layout": [1, tokens_per_step] if flatten else [shape.rows, shape.seq],
        "gradient_checkpointing": RECIPE.gradient_checkpointing, "warmup_steps": warmup, "steps": steps,
        "tokens_per_step": tokens_per_step, "mean_example_tokens": round(mean_example, 1),
        "step_seconds": [round(s, 4) for s in seconds], "initial_eval_loss": initial_loss, "losses": losses,
        "grad_norms": grad_norms, "tokens_per_second": tokens_per_second,
        "model_flops_per_token": flops,
        # Model FLOPs: recomputation under gradient checkpointing is not counted.
        "mfu_frozen_base_4n": tokens_per_second * flops["frozen_base_4n"] / (peak_tflops * 1e12),
        "mfu_6n": tokens_per_second * flops["full_6n"] / (peak_tflops * 1e12),
        "trainable_params": sum(p.numel() for p in trainable), "lora_tensors": len(lora),
        "lora_tensors_with_grad": with_grad, "weights_memory_gib": weights, **peak_memory(device),
    }


def generation_section(shape: Shape, device: str, dtype: torch.dtype, attn: str) -> dict:
    """NF4 base (as the reference recipe serves it) with two random LoRA adapters; each batch
    alternates them row by row through peft's `adapter_names`, on one repeated prompt, so rows of
    different adapters differ only by their adapter. tokens/s: new tokens over the whole generate
    call, prefill included."""
    from peft import get_peft_model

    reset_memory(device)
    model = build_model(shape, device, dtype, attn, quantize=True)
    model.config.use_cache = True
    model = get_peft_model(model, lora_config(random_init=True), adapter_name="sql_a")
    model.add_adapter("sql_b", lora_config(random_init=True))
    model.eval()
    prompt = torch.randint(3, shape.vocab, (1, shape.prompt_tokens), generator=torch.Generator().manual_seed(2))
    runs = []
    for batch_size in shape.batch_sizes:
        input_ids = prompt.expand(batch_size, -1).to(device)
        names = [("sql_a", "sql_b")[row % 2] for row in range(batch_size)]

        def generate(new_tokens: int):
            with torch.no_grad(), autocast(device, dtype):
                return model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      adapter_names=names, do_sample=False, max_new_tokens=new_tokens,
                                      min_new_tokens=new_tokens, pad_token_id=0)

        generate(2)  # warm-up: kernels, KV cache allocation
        sync(device)
        start = time.perf_counter()
        completions = generate(shape.new_tokens)[:, shape.prompt_tokens:]
        sync(device)
        elapsed = time.perf_counter() - start
        runs.append({
            "batch_size": batch_size, "adapters": sorted(set(names)), "new_tokens": completions.shape[1],
            "seconds": round(elapsed, 4), "tokens_per_second": batch_size * completions.shape[1] / elapsed,
            "tokens_per_second_per_sequence": completions.shape[1] / elapsed,
            "adapter_rows_differ": None if batch_size == 1 else not torch.equal(completions[0], completions[1]),
        })
        log(f"generation batch {batch_size}: {runs[-1]['tokens_per_second']:.1f} tokens/s")
    return {"base_quantization": "nf4", "compute_dtype": str(dtype).removeprefix("torch."),
            "prompt_tokens": shape.prompt_tokens, "runs": runs, **peak_memory(device)}


def package_version(name: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return __import__(name).__version__
    except Exception as err:  # noqa: BLE001 - recorded, not fatal: the sections that need it fail
        return f"not importable: {error_text(err)}"


def environment(device: str, dtype: torch.dtype, attn: str) -> dict:
    import peft
    import transformers

    facts = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "bitsandbytes": package_version("bitsandbytes"),
        "flash_attn": package_version("flash_attn"),
        "device": device, "attn_implementation": attn, "dtype": str(dtype).removeprefix("torch."),
        "cpu_count": os.cpu_count(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        facts.update(device_name=props.name, device_memory_gib=gib(props.total_memory), cuda=torch.version.cuda,
                     capability=f"{props.major}.{props.minor}")
    else:
        facts["device_name"] = platform.processor() or platform.machine()
    return facts


_ABSOLUTE = re.compile(r"""/(?:work|home|root|tmp|Users|mnt|opt|var|usr)/(?:[^\s'"]*/)?([^/\s'"]+)""")


def error_text(err: BaseException) -> str:
    # Committed reports carry no absolute paths of the machine they ran on (tests/test_repo_hygiene.py).
    return _ABSOLUTE.sub(r"\1", f"{type(err).__name__}: {err}")[:2000]


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.with_suffix(".tmp")
    scratch.write_text(json.dumps(report, indent=2) + "\n")
    scratch.replace(out)  # a run killed mid-write leaves the previous sections intact


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, same code path (runs on a CPU)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                        help="auto: cuda if available, else cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per section (default 5; --tiny 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps before them (default 1)")
    parser.add_argument("--section-budget-s", type=float, default=150,
                        help="a training section stops timing more steps after this many seconds (default 150)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default bench/results/gpu_check.json; --tiny: gpu_check_tiny.json)")
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here; use --device cpu with --tiny")
    if device == "cpu" and not args.tiny:
        parser.error("--device cpu needs --tiny: the 6.7B shape takes minutes per step on a CPU")
    steps = args.steps if args.steps is not None else (3 if args.tiny else 5)
    if steps < 1 or args.warmup < 0 or steps + args.warmup < 2:
        parser.error("--steps >= 1 and --warmup >= 0 with at least 2 steps in all (LoRA A first gets a "
                     "gradient on step 2, once B is no longer zero)")
    out = args.out or ROOT / "bench/results" / ("gpu_check_tiny.json" if args.tiny else "gpu_check.json")
    shape = TINY if args.tiny else FULL
    # bf16 on the GPU; fp32 on a CPU, where the tiny run checks the code path, not speed.
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    attn = attention_implementation(device)
    started = time.perf_counter()

    report = {"benchmark": "gpu_check", "mode": "tiny" if args.tiny else "full",
              "model": "random init, deepseek-coder-6.7b shape" if not args.tiny else "random init, tiny Llama",
              "environment": environment(device, dtype, attn), "shape": asdict(shape), "recipe": asdict(RECIPE),
              "sections": {}}
    peak = matmul_peak_tflops(device, dtype, shape.matmul_size)
    report["matmul_peak_tflops"] = {"value": peak, "dtype": report["environment"]["dtype"],
                                    "size": shape.matmul_size}
    log(f"{device} ({report['environment']['device_name']}), attention {attn}, matmul peak {peak:.3g} TFLOP/s")
    write(report, out)
    for name in args.sections:
        section_start = time.perf_counter()
        try:
            if name == "generation":
                result = generation_section(shape, device, dtype, attn)
            else:
                result = train_section(shape, device, dtype, attn, steps, args.warmup,
                                       quantized=name == "qlora_train", peak_tflops=peak,
                                       budget_s=args.section_budget_s)
                log(f"{name}: {result['tokens_per_second']:.0f} tokens/s, MFU(4N) {result['mfu_frozen_base_4n']:.3f}")
        except Exception as err:  # noqa: BLE001 - OOM or a missing piece: record it, run the next section
            traceback.print_exc()
            result = {"error": error_text(err)}
            log(f"{name} failed: {result['error']}")
        result["wall_seconds"] = round(time.perf_counter() - section_start, 2)
        report["sections"][name] = result
        report["wall_seconds"] = round(time.perf_counter() - started, 2)
        write(report, out)
        reset_memory(device)
    log(f"wrote {out} in {report['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
