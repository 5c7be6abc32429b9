"""Soak with faults: N requests at concurrency C against serve_configs/local.yaml (as shipped, on a
local Ray with this machine's CPUs), over the base model and 3 adapters in an S3 registry served by
a moto server on loopback, with three faults during the run:

  (a) replica_kill   at 25% of requests sent: ray.kill on one SQLModel replica. In-flight requests
                     are retried by the ingress or answered 503 + Retry-After; we report when the
                     app is whole again (replica count back and a request answered).
  (b) alias_promote  at 50%: a new version of adapter a1 is pushed and a1@prod promoted to it. No
                     request may fail; answers for a1@prod sent after alias_refresh_s (+2 s) must
                     all come from the new version.
  (c) store_outage   at 70%: the moto server is stopped for --outage-s. Loaded adapters keep
                     answering; a probe asks every second for a4, pushed before the outage and
                     never asked for, which must get a clean 502/503; after the store returns we
                     report how long until a4 answers 200.

Reported (bench/results/soak.json): requests sent, answered 200, 503 (with when), other errors
(goal 0), p50/p99 latency overall and during each fault. Loopback only; bounded by --requests and
--max-seconds (clients stop sending when it passes). The full run of issue 15:

    nice -n 19 .venv/bin/python bench/soak.py --requests 10000 --concurrency 32 --model builtin
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import _free_port as free_port  # noqa: E402  (the tests' helpers: one copy of each)
from motostore import Store  # noqa: E402
APP = "sqlfoundry"
SCHEMA = "CREATE TABLE head (age INTEGER, name VARCHAR, born_state VARCHAR)"
REFS = [None, "a1@prod", "a2", "a3"]  # base, an alias, two latest-version refs
SETTLE_S = 2.0  # after promotion + alias_refresh_s: margin for a resolve that began before it


def make_adapter(base_dir: str, name_or_path: str, folder: Path, seed: int) -> Path:
    """A LoRA adapter on q/v with small random B (it changes the output a little), saved as
    `sqlfoundry train` saves one, trained-on name `name_or_path` (what the deployment serves)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT, ModelConfig, QuantizationConfig
    from sqlfoundry.modeling.loading import write_adapter_meta

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1e-3)
    model.save_pretrained(folder)
    write_adapter_meta(folder, ModelConfig(name_or_path=name_or_path), QuantizationConfig(), DEFAULT_SYSTEM_PROMPT)
    return folder


@dataclass
class Record:
    sent: float  # seconds since the run started
    latency: float
    ref: str | None
    status: int | None  # None: no HTTP answer (error says why)
    adapter: str | None = None  # name@version that answered
    error: str | None = None
    retry_after: str | None = None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))], 3)


def summary(records: list[Record]) -> dict:
    ok = [r.latency for r in records if r.status == 200]
    statuses: dict[str, int] = {}
    for r in records:
        key = str(r.status) if r.status is not None else (r.error or "no answer").split(":")[0]
        statuses[key] = statuses.get(key, 0) + 1
    return {"requests": len(records), "answered_200": len(ok), "statuses": statuses,
            "p50_latency_s": percentile(ok, 50), "p99_latency_s": percentile(ok, 99)}


def replicas() -> int:
    from ray import serve

    return serve.status().applications[APP].deployments["SQLModel"].replica_states.get("RUNNING", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--model", choices=["tiny", "builtin"], default="builtin",
                        help="builtin: SmolLM2-135M as local.yaml ships; tiny: a random 2-layer Llama (smoke runs)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--outage-s", type=float, default=30, help="how long the store stays stopped")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600, help="clients stop sending after this")
    parser.add_argument("--out", default="bench/results/soak.json", help="repository-relative result file")
    args = parser.parse_args()
    if args.requests < 20 or args.concurrency < 1:
        parser.error("--requests must be at least 20 (the faults are scheduled by share of requests sent) "
                     "and --concurrency at least 1")

    import boto3
    import ray

    from sqlfoundry.storage.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    store = Store()
    # Before ray.init, so every Ray worker (the replicas) reaches this store with these test keys.
    os.environ.update({"AWS_ENDPOINT_URL": store.endpoint, "AWS_ACCESS_KEY_ID": "soak",
                       "AWS_SECRET_ACCESS_KEY": "soak", "AWS_DEFAULT_REGION": "us-east-1"})
    boto3.client("s3").create_bucket(Bucket="soak")
    registry = Registry("s3://soak/registry")
    if args.model == "tiny":
        from tiny import build_tiny_llama

        base_dir = name_or_path = str(build_tiny_llama(work / "tiny"))
    else:
        from sqlfoundry.modeling.builtin import resolve_builtin

        name_or_path = "smollm2-135m-instruct"
        base_dir = str(resolve_builtin(name_or_path))
    versions = {f"a{i}": registry.push(make_adapter(base_dir, name_or_path, work / f"a{i}", i), f"a{i}")
                for i in (1, 2, 3, 4)}  # a4: asked for only during the outage
    registry.promote("a1", versions["a1"], "prod")

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Serve kills a proxy that is not ready within 5 s; on a CPU busy with the soak's own load (or
    # anything else) that fails the start, so give it a minute.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    try:
        soak(args, store, registry, versions, work, base_dir, name_or_path)
    finally:  # a failed start must not leave Serve, Ray or the store behind
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        store.stop()


def soak(args, store: Store, registry, versions: dict, work: Path, base_dir: str, name_or_path: str) -> None:
    """Deploy local.yaml, warm it, run the load with the fault schedule, write the report."""
    import ray
    import requests

    from sqlfoundry.serving.deploy import deploy, load_serve_file

    config = load_serve_file(ROOT / "serve_configs/local.yaml",
                             [f"registry={registry.root}", f"model.name_or_path={name_or_path}",
                              f"adapter_cache_dir={work / 'cache'}"])
    config["http_options"]["port"] = free_port()
    refresh_s = config["applications"][0]["args"].get("alias_refresh_s", 10)
    url = deploy(config) + "/v1/sql"
    session = threading.local()

    def post(ref: str | None, index: int) -> Record:
        if not hasattr(session, "http"):
            session.http = requests.Session()
        body = {"schema": SCHEMA, "question": f"How many heads older than {index % 90} were born in state {index}?",
                "max_new_tokens": args.max_new_tokens, "adapter": ref}
        sent = time.monotonic()
        try:
            response = session.http.post(url, json=body, timeout=180)
            answer = response.json() if response.status_code == 200 else {}
            return Record(sent - t0, time.monotonic() - sent, ref, response.status_code, answer.get("adapter"),
                          None if response.status_code == 200 else response.text[:300],
                          response.headers.get("Retry-After"))
        except requests.RequestException as err:
            return Record(sent - t0, time.monotonic() - sent, ref, None, error=f"{type(err).__name__}: {err}"[:300])

    t0 = time.monotonic()
    for ref in REFS:  # warm: the first replica's start and adapter loads out of the measurement
        warm = post(ref, 0)
        if warm.status != 200:
            raise SystemExit(f"warm-up request for {ref or 'the base model'} failed: {warm.status} {warm.error}")
    t0 = time.monotonic()
    deadline = t0 + args.max_seconds
    records: list[Record] = []
    sent = [0]
    lock = threading.Lock()
    faults: dict[str, dict] = {}

    def client(_: int) -> None:
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= args.requests:
                    return
                index = sent[0]
                sent[0] += 1
            records.append(post(REFS[index % len(REFS)], index))

    def at_share(share: float) -> None:
        while sent[0] < share * args.requests and time.monotonic() < deadline:
            time.sleep(0.05)

    def now() -> float:
        return round(time.monotonic() - t0, 3)

    def schedule() -> None:
        at_share(0.25)
        before = replicas()
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["name"].startswith(f"SERVE_REPLICA::{APP}#SQLModel#")]
        killed = names[0]
        faults["replica_kill"] = {"start_s": now(), "replicas_before": before, "killed": killed}
        ray.kill(ray.get_actor(killed, namespace="serve"), no_restart=True)
        while time.monotonic() < deadline:
            alive = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
            if killed not in alive and replicas() >= before and post(None, 0).status == 200:
                break
            time.sleep(0.5)
        faults["replica_kill"]["end_s"] = faults["replica_kill"]["healthy_again_s"] = now()

        at_share(0.5)
        newer = registry.push(make_adapter(base_dir, name_or_path, work / "a1-new", 11), "a1")
        registry.promote("a1", newer, "prod")
        start = now()
        faults["alias_promote"] = {"start_s": start, "end_s": round(start + refresh_s + SETTLE_S, 3),
                                   "old": f"a1@{versions['a1']}", "new": f"a1@{newer}", "alias_refresh_s": refresh_s}

        at_share(0.7)
        store.stop()
        outage = {"start_s": now(), "new_adapter_probes": []}
        faults["store_outage"] = outage
        try:
            stop_at = time.monotonic() + args.outage_s
            while time.monotonic() < stop_at:
                probe = post("a4", 0)
                outage["new_adapter_probes"].append({"at_s": probe.sent, "status": probe.status,
                                                     "error": (probe.error or "")[:200]})
                time.sleep(1)
        finally:
            store.start()
        outage["end_s"] = now()
        while time.monotonic() < deadline:
            probe = post("a4", 0)
            if probe.status == 200:
                outage["new_adapter_ok_after_store_back_s"] = round(now() - outage["end_s"], 3)
                break
            time.sleep(0.5)

    scheduler = threading.Thread(target=schedule, daemon=True)
    scheduler.start()
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(client, range(args.concurrency)))
    scheduler.join(timeout=max(0.0, deadline - time.monotonic()) + args.outage_s + 60)
    wall = time.monotonic() - t0

    for name, fault in faults.items():
        window = [r for r in records if fault["start_s"] <= r.sent <= fault.get("end_s", wall)]
        fault["during"] = summary(window)
    if "alias_promote" in faults:
        promote = faults["alias_promote"]
        late = [r for r in records if r.ref == "a1@prod" and r.sent > promote["end_s"] and r.status == 200]
        promote["answers_after_refresh"] = len(late)
        promote["answers_after_refresh_from_old_version"] = sum(r.adapter != promote["new"] for r in late)
    if "store_outage" in faults:
        outage = faults["store_outage"]
        probes = [p["status"] for p in outage["new_adapter_probes"]]
        outage["new_adapter_probe_statuses"] = {str(s): probes.count(s) for s in set(probes)}
    report = {
        "smoke": args.requests < 10_000 or args.model == "tiny",
        "command": f"python bench/soak.py --requests {args.requests} --concurrency {args.concurrency} --model "
                   f"{args.model} --max-new-tokens {args.max_new_tokens} --outage-s {args.outage_s:g}",
        "serve_config": "serve_configs/local.yaml (registry: moto S3 on loopback)",
        "model": name_or_path if args.model == "builtin" else "tiny random Llama (tests/tiny.py)",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "requests_sent": len(records), "wall_s": round(wall, 1),
        "answered_200": sum(r.status == 200 for r in records),
        "answered_503": sum(r.status == 503 for r in records),
        "503_at_s": [round(r.sent, 2) for r in records if r.status == 503],
        "503_without_retry_after": sum(r.status == 503 and not r.retry_after for r in records),
        "other_errors": sum(r.status not in (200, 503) for r in records),
        "other_error_samples": [r.error for r in records if r.status not in (200, 503)][:10],
        "overall": summary(records),
        "faults": faults,
    }
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("requests_sent", "answered_200", "answered_503", "other_errors")}))


if __name__ == "__main__":
    main()
