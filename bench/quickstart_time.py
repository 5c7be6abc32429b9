"""Where `make quickstart`'s time goes: runs its commands (after the install) and splits the wall time
into Ray start, worker start + data preparation, model load, training steps, evaluations, the final
generation check and the rest, from the timestamps of output.dir/train.log and metrics.jsonl.
Run it alone on the machine (it trains the quickstart: minutes):

    .venv/bin/python bench/quickstart_time.py        # -> bench/results/quickstart_time.json

The run goes to outputs/bench/quickstart-time (its own Ray run name and registry), so it neither
resumes nor promotes the real quickstart's adapter.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "sqlfoundry.cli"]


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _timed(command: list[str]) -> float:
    began = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.time() - began


def phases(out: Path, storage: Path, began: float, ended: float) -> dict[str, float]:
    """Seconds per phase, from when each file was written: the driver's run state (Ray is up), the
    worker's data report (worker started, data prepared), the first metric record (its time minus the
    train runtime so far: training began), the last one and result.json (adapter saved, generation
    check and push done). Worker log lines carry no timestamps, file times do."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in records if "train_runtime" in r)
    final = next(r for r in records if "train_runtime" in r and "train_loss" in r)
    evals = [r["eval_runtime"] for r in records if "eval_runtime" in r]
    ray_up, data_done = _mtime(storage / "sqlfoundry_run.json"), _mtime(out / "data_report.json")
    train_began = first["time"] - first["train_runtime"]
    result_written = _mtime(out / "result.json")
    return {"cli_start_and_ray_start": round(ray_up - began, 1),
            "worker_start_and_data_preparation": round(data_done - ray_up, 1),
            "model_load_and_trainer_setup": round(train_began - data_done, 1),
            "training_steps": round(final["train_runtime"] - sum(evals[:-1]), 1),
            "evaluations_during_training": round(sum(evals[:-1]), 1), "final_evaluation": evals[-1],
            "save_generation_check_and_push": round(result_written - final["time"] - evals[-1], 1),
            "ray_shutdown_and_exit": round(ended - result_written, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench/results/quickstart_time.json"))
    args = parser.parse_args()
    out, storage = ROOT / "outputs/bench/quickstart-time", ROOT / "outputs/ray/quickstart-time"
    resolve_s = _timed([*CLI, "models", "resolve", "smollm2-135m-instruct"])
    began = time.time()
    train_s = _timed([*CLI, "train", "--config", "jobs/configs/quickstart.yaml", "--fresh",
                      "--set", f"output.dir={out.relative_to(ROOT)}", "--set", "ray.run_name=quickstart-time",
                      "--set", f"output.push_to={(out / 'registry').relative_to(ROOT)}"])
    result = {"benchmark": "quickstart_time", "command": "make quickstart (its two commands, after the install)",
              "models_resolve_s": round(resolve_s, 1), "train_s": round(train_s, 1),
              "total_s": round(resolve_s + train_s, 1), "phases_s": phases(out, storage, began, began + train_s),
              "output_dir": str(out.relative_to(ROOT))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
