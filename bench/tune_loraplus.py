"""LoRA+ ratio search on the builtin SmolLM2 with real data: plain LoRA (ratio 1) against the best
ratio found, equal steps per trial (no early stopping), eval loss curves and execution accuracy.

Data: a fixed sample of ../shared/data/sql-create-context/sql_create_context_v4.json (seed 315,
`--sample` rows, the 500 held-out rows of bench/accuracy.py excluded). Every trial is the quickstart
recipe with the trial's ratio; EX is measured on the first `--ex-rows` held-out rows for ratio 1 and
for the best ratio. Writes bench/results/tune_loraplus.json (+ the tuning CSV/JSON/PNG under
outputs/bench/tune_loraplus). Run it alone on the machine.

    .venv/bin/python bench/tune_loraplus.py [--ratios 1 4 16] [--steps 30] [--ex-rows 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import DATA, HELDOUT, RESULTS, build_heldout, evaluate  # noqa: E402


def steps_to_reach(curve: list[dict], target: float) -> int | None:
    return next((c["step"] for c in curve if c["eval_loss"] is not None and c["eval_loss"] <= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--evals", type=int, default=5, help="evaluations per trial")
    parser.add_argument("--sample", type=int, default=4000)
    parser.add_argument("--ex-rows", type=int, default=200)
    args = parser.parse_args()

    from sqlfoundry.config import load_config
    from sqlfoundry.tuning.run import tune_run

    if not HELDOUT.is_file():
        build_heldout()
    out = ROOT / "outputs/bench/tune_loraplus"
    eval_steps = max(1, args.steps // args.evals)
    overrides = [
        f"data.source={DATA}", f"data.sample_size={args.sample}", "data.eval_size=64", f"data.exclude=[{HELDOUT}]",
        f"training.max_steps={args.steps}", f"training.eval_steps={eval_steps}", f"training.save_steps={eval_steps}",
        "training.final_generation_samples=0", f"output.dir={out}", "output.push_to=null",
        f"ray.storage_path={ROOT / 'outputs/bench/ray'}", f"tune.run_name=tune-loraplus-{int(time.time())}",
        "tune.scheduler=none", "tune.metric=eval_loss", "tune.resources_per_trial={CPU: 2}",
        "tune.search_space={loraplus.ratio: {sample: grid, values: [%s]}}" % ", ".join(f"{r:g}" for r in args.ratios),
    ]
    started = time.perf_counter()
    outcome = tune_run(load_config(ROOT / "jobs/configs/quickstart.yaml", overrides))
    tune_s = time.perf_counter() - started
    saved = json.loads(Path(outcome.files["json"]).read_text())
    by_ratio = {row["params"]["loraplus.ratio"]: row for row in outcome.trials}
    plain, best = by_ratio[1.0], outcome.best
    plain_final = saved["curves"][plain["trial_id"]][-1]["eval_loss"]
    best_curve = saved["curves"][best["trial_id"]]

    def adapter_of(row):
        return str(Path(row["checkpoint_path"]))

    ex = {"ratio_1": evaluate("tune_ratio_1", adapter_of(plain), args.ex_rows)}
    if best["trial_id"] != plain["trial_id"]:
        ex["best"] = evaluate(f"tune_ratio_{best['params']['loraplus.ratio']:g}", adapter_of(best), args.ex_rows)
    else:
        ex["best"] = ex["ratio_1"]
    report = {
        "command": "python bench/tune_loraplus.py --ratios " + " ".join(f"{r:g}" for r in args.ratios)
                   + f" --steps {args.steps} --evals {args.evals} --sample {args.sample} --ex-rows {args.ex_rows}",
        "data": f"{DATA.name}: sample {args.sample} (seed 315) minus {HELDOUT.name}; eval loss on 64 rows; "
                f"EX on the first {args.ex_rows} rows of {HELDOUT.name}",
        "steps_per_trial": args.steps, "tune_wall_s": round(tune_s, 1),
        "trials": [{k: v for k, v in row.items() if k != "checkpoint_path"} for row in outcome.trials],
        "curves": saved["curves"],
        "best_ratio": best["params"]["loraplus.ratio"],
        "eval_loss": {"ratio_1": plain["best_eval_loss"], "best": best["best_eval_loss"]},
        "execution_accuracy": {k: v["ex"] for k, v in ex.items()},
        "execution_accuracy_nocase": {k: v["ex_nocase"] for k, v in ex.items()},
        # Convergence: the step at which the best ratio first reaches plain LoRA's final eval loss.
        "best_reaches_ratio1_final_loss_at_step": steps_to_reach(best_curve, plain_final),
        "plot": "bench/results/tune_loraplus.png",
    }
    shutil.copy(outcome.files["plot"], RESULTS / "tune_loraplus.png")
    shutil.copy(outcome.files["csv"], RESULTS / "tune_loraplus.csv")
    (RESULTS / "tune_loraplus.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: report[k] for k in ("best_ratio", "eval_loss", "execution_accuracy",
                                            "best_reaches_ratio1_final_loss_at_step")}, indent=2))


if __name__ == "__main__":
    main()
