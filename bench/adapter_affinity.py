"""Adapter-affine replicas: adapter loads per 1,000 requests with 8 adapters and 2 model replicas,
with `adapter_affinity` off (any replica: power of two choices) and on (each adapter's requests go
to its home replica, serving/routing.py). Run --repeats times: replica ids, and so the hashes, are
new with every deployment.

Both apps come from serve_configs/local.yaml with 2 fixed SQLModel replicas, max_loaded_adapters 4
(each replica can hold half of the adapters), a local-folder registry and a tiny random Llama (what
is counted is loads, not speed). The same seeded sequence of requests, uniform over the 8 adapters,
goes to each app in turn at --concurrency. Loads are the replicas' `sqlfoundry_adapter_loads`
counter as Ray exports it; JSON to bench/results/adapter_affinity.json.

    .venv/bin/python bench/adapter_affinity.py [--requests 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
SCHEMA = "CREATE TABLE head (age INTEGER, name VARCHAR, born_state VARCHAR)"
ADAPTERS = [f"t{i}" for i in range(1, 9)]
OUT = ROOT / "bench/results/adapter_affinity.json"


def exported_loads(app: str, port: int, wait_s: float = 90) -> int:
    """Sum of the app's sqlfoundry_adapter_loads over its replicas, once two exports agree."""
    import requests

    deadline, last = time.monotonic() + wait_s, None
    while time.monotonic() < deadline:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("ray_sqlfoundry_adapter_loads_total{") and f'application="{app}"' in line)
        if last is not None and total == last and total > 0:
            return int(total)
        last = total
        time.sleep(6)
    raise RuntimeError(f"no stable sqlfoundry_adapter_loads export for app {app!r} within {wait_s:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="deployments per setting (3)")
    args = parser.parse_args()

    import ray
    import requests
    from ray import serve

    from soak import free_port, make_adapter
    from tiny import build_tiny_llama

    from sqlfoundry.serving.deploy import deploy, load_serve_file
    from sqlfoundry.storage.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="affinity-"))
    base = str(build_tiny_llama(work / "tiny"))
    registry = Registry(str(work / "registry"))
    for seed, name in enumerate(ADAPTERS, 1):
        registry.push(make_adapter(base, base, work / name, seed), name)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    port = ray._private.worker.global_worker.node.metrics_export_port
    rng = random.Random(0)
    sequence = [rng.choice(ADAPTERS) for _ in range(args.requests)]
    http_port = free_port()  # one Serve instance: both apps behind the same proxy
    report = {"requests": args.requests, "concurrency": args.concurrency, "adapters": len(ADAPTERS),
              "replicas": 2, "max_loaded_adapters": 4, "model": "tiny random Llama (tests/tiny.py)",
              "config": "serve_configs/local.yaml", "runs": {}}
    try:
        for affinity, repeat in [(a, r) for r in range(args.repeats) for a in (False, True)]:
            app = f"affinity_{'on' if affinity else 'off'}_{repeat}"
            config = load_serve_file(ROOT / "serve_configs/local.yaml", [
                f"registry={registry.root}", f"model.name_or_path={base}", "max_loaded_adapters=4",
                f"adapter_affinity={str(affinity).lower()}", f"adapter_cache_dir={work / 'cache' / app}"])
            main_app = config["applications"][0]
            main_app["name"] = app
            model = next(d for d in main_app["deployments"] if d["name"] == "SQLModel")
            model.pop("autoscaling_config", None)
            model.update(num_replicas=2)
            model.setdefault("ray_actor_options", {})["num_cpus"] = 0.5
            config["http_options"]["port"] = http_port
            url = deploy(config, timeout_s=300) + "/v1/sql"

            def post(adapter: str) -> int:
                body = {"schema": SCHEMA, "question": "how many heads?", "max_new_tokens": 4, "adapter": adapter}
                return requests.post(url, json=body, timeout=120).status_code

            started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                statuses = list(pool.map(post, sequence))
            seconds = time.perf_counter() - started
            loads = exported_loads(app, port)
            report["runs"][app] = {"adapter_affinity": affinity, "answered_200": statuses.count(200),
                                   "other_statuses": sorted({s for s in statuses if s != 200}),
                                   "adapter_loads": loads,
                                   "loads_per_1000_requests": round(1000 * loads / args.requests, 1),
                                   "seconds": round(seconds, 1)}
            print(app, json.dumps(report["runs"][app]), flush=True)
            serve.delete(app)
    finally:
        serve.shutdown()
        ray.shutdown()
    for affinity in (False, True):
        loads = [run["loads_per_1000_requests"] for run in report["runs"].values() if run["adapter_affinity"] is affinity]
        report[f"loads_per_1000_requests_affinity_{'on' if affinity else 'off'}"] = {"min": min(loads), "max": max(loads)}
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
