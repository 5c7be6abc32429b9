"""Serving load test: the Ray Serve app (dynamic batching) against one plain `generate` per request,
one request at a time (the reference recipe's way), same model, same prompts, same run.

For each concurrency level, `concurrency` client threads send `max(8, 2 x concurrency)` requests in
all, after an unmeasured warm-up at that concurrency for the Serve app (so autoscaling has reacted);
we record requests/s and p50/p95/p99 latency (client-side, queueing included) and errors.
The baseline runs in this process behind a lock (no HTTP cost, which only flatters it). Serve runs
from serve_configs/local.yaml as shipped (autoscaling 1-2 replicas of 1 CPU each) on a local Ray
with this machine's CPUs. Prompts: the first rows of ../shared/data/sql-create-context (synthetic
rows if it is absent). Run it alone on the machine.

    .venv/bin/python bench/serve_load.py [--levels 1 4 16 32] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/sql-create-context/sql_create_context_v4.json"


def load_prompts(count: int) -> tuple[list[dict], str]:
    if DATA.is_file():
        rows = json.loads(DATA.read_text())[:count]
        return [{"schema": r["context"], "question": r["question"]} for r in rows], f"{DATA.name} rows 0-{count - 1}"
    from sqlfoundry.data.synth import generate_rows

    rows = generate_rows(count, seed=0)
    return [{"schema": r["context"], "question": r["question"]} for r in rows], f"synthetic://{count}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def warm_up(send, prompts: list[dict], concurrency: int, seconds: float) -> None:
    """Load at `concurrency` for `seconds`, unmeasured, so autoscaling reaches its steady state."""
    stop = time.monotonic() + seconds

    def loop(worker: int):
        index = worker
        while time.monotonic() < stop:
            send(prompts[index % len(prompts)])
            index += concurrency

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(loop, range(concurrency)))


def drive(send, prompts: list[dict], concurrency: int) -> dict:
    total = max(8, 2 * concurrency)
    latencies, errors = [], 0

    def one(index: int):
        started = time.perf_counter()
        ok = send(prompts[index % len(prompts)])
        return time.perf_counter() - started, ok

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for latency, ok in pool.map(one, range(total)):
            latencies.append(latency)
            errors += not ok
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": total, "errors": errors, "wall_s": round(wall, 2),
            "requests_per_s": round(total / wall, 3),
            **{f"p{q}_latency_s": round(percentile(latencies, q), 3) for q in (50, 95, 99)},
            "mean_latency_s": round(statistics.mean(latencies), 3)}


def baseline_sender(model_name: str, max_new_tokens: int):
    """One `generate` per request, one at a time, as in the reference recipe."""
    import torch

    from sqlfoundry.config.schema import ModelConfig, QuantizationConfig
    from sqlfoundry.data.formatting import render_prompt
    from sqlfoundry.modeling.loading import load_model, load_tokenizer, set_cpu_threads

    set_cpu_threads(os.cpu_count())
    model_cfg = ModelConfig(name_or_path=model_name)
    model, tokenizer = load_model(model_cfg, QuantizationConfig()).eval(), load_tokenizer(model_cfg)
    lock = threading.Lock()

    def send(prompt: dict) -> bool:
        text = render_prompt(tokenizer, prompt["schema"], prompt["question"])
        with lock, torch.no_grad():
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
            tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return True

    return send


def serve_sender(max_new_tokens: int, overrides: list[str]):
    import ray
    import requests

    from sqlfoundry.serving.deploy import deploy, load_serve_file

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    config = load_serve_file(ROOT / "serve_configs/local.yaml", ["registry=null", *overrides])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        config["http_options"]["port"] = sock.getsockname()[1]
    url = deploy(config) + "/v1/sql"
    session = threading.local()

    def send(prompt: dict) -> bool:
        if not hasattr(session, "http"):
            session.http = requests.Session()
        response = session.http.post(url, json={**prompt, "max_new_tokens": max_new_tokens}, timeout=600)
        return response.status_code == 200

    return send


def replicas() -> int:
    from ray import serve

    return serve.status().applications["sqlfoundry"].deployments["SQLModel"].replica_states.get("RUNNING", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--warm-up-s", type=float, default=30,
                        help="unmeasured load before each Serve level (the one-at-a-time baseline has no state to warm)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value under the app's args, e.g. batching.batch_wait_timeout_s=0.2")
    parser.add_argument("--out", default=str(ROOT / "bench/results/serve_load.json"))
    args = parser.parse_args()
    prompts, source = load_prompts(64)

    results = {"baseline_one_at_a_time": [], "serve_batched": []}
    send = baseline_sender(args.model, args.max_new_tokens)
    send(prompts[0])  # warm up
    for level in args.levels:
        results["baseline_one_at_a_time"].append(drive(send, prompts, level))
        print("baseline", results["baseline_one_at_a_time"][-1], flush=True)
    del send

    send = serve_sender(args.max_new_tokens, args.overrides)
    send(prompts[0])
    for level in args.levels:
        warm_up(send, prompts, level, args.warm_up_s)
        row = drive(send, prompts, level)
        row["model_replicas_after"] = replicas()
        results["serve_batched"].append(row)
        print("serve", row, flush=True)

    ratios = {str(b["concurrency"]): round(s["requests_per_s"] / b["requests_per_s"], 2)
              for b, s in zip(results["baseline_one_at_a_time"], results["serve_batched"])}
    report = {
        "command": f"python bench/serve_load.py --levels {' '.join(map(str, args.levels))} "
                   f"--max-new-tokens {args.max_new_tokens} --warm-up-s {args.warm_up_s:g}"
                   + "".join(f" --set {o}" for o in args.overrides),
        "model": args.model, "prompts": source, "max_new_tokens": args.max_new_tokens,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "serve_config": "serve_configs/local.yaml (registry disabled)", "overrides": args.overrides,
        "throughput_ratio_serve_over_baseline": ratios, **results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"throughput_ratio_serve_over_baseline": ratios}, indent=2))


if __name__ == "__main__":
    main()
