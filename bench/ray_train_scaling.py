"""Ray Train scaling on this machine: trained tokens/s with 1 and 2 CPU workers, and Ray's overhead.

Same config for both runs (the quickstart's SmolLM2 recipe, a few steps, no mid-run eval): one worker
with 2 CPUs against two workers with 1 CPU each (2 cores in all), so the comparison holds the
hardware fixed. Fixed Ray overhead = wall time of the whole run minus the Trainer's own train time
(Ray start, worker start, process group, model load, checkpoint upload). JSON in bench/results/.

    .venv/bin/python bench/ray_train_scaling.py [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(workers: int, cpus_per_worker: int, steps: int) -> dict:
    from sqlfoundry.config import load_config
    from sqlfoundry.training.ray_train import train_with_ray

    with tempfile.TemporaryDirectory() as scratch:
        config = load_config(ROOT / "jobs/configs/quickstart.yaml", [
            f"training.max_steps={steps}", f"training.eval_steps={steps}", f"training.save_steps={steps}",
            "training.final_generation_samples=0", "data.eval_size=8", f"output.dir={scratch}/out",
            "output.push_to=null", f"ray.storage_path={scratch}/ray", f"ray.run_name=scaling-{workers}",
            f"ray.num_workers={workers}", f"ray.resources_per_worker={{CPU: {cpus_per_worker}}}",
        ])
        start = time.perf_counter()
        result = train_with_ray(config)
        wall = time.perf_counter() - start
    return {"workers": workers, "cpus_per_worker": cpus_per_worker, "steps": result.global_step,
            "effective_batch_size": result.effective_batch_size,
            "tokens_per_second": result.tokens_per_second, "train_runtime_s": result.train_runtime_s,
            "wall_s": wall, "ray_overhead_s": wall - (result.train_runtime_s or 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "bench/results/ray_train_scaling.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    runs = [run(1, 2, args.steps), run(2, 1, args.steps)]
    ray.shutdown()
    results = {"benchmark": "ray_train_scaling", "config": "jobs/configs/quickstart.yaml (SmolLM2-135M, batch 8 "
               "per worker)", "machine_cpus": 2, "runs": runs,
               "tokens_per_second_ratio_2_vs_1": runs[1]["tokens_per_second"] / runs[0]["tokens_per_second"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
