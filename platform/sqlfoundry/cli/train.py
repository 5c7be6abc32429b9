"""`sqlfoundry train` and `sqlfoundry tune`: fine-tune on Ray Train, search on Ray Tune."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sqlfoundry.cli.common import add_address_arg, add_config_args, add_verbose_arg
from sqlfoundry.logs import say

LOCAL_REGISTRY = "outputs/registry"  # the registry serve_configs/local.yaml serves


def _train_summary(result) -> str:
    """One line of what a run reports; a remote run (rank 0 on another node) may lack some metrics."""
    def shown(value, fmt):
        return "n/a" if value is None else format(value, fmt)

    return (f"train loss {shown(result.train_loss, '.4f')}, eval loss {shown(result.eval_loss, '.4f')}, "
            f"steps {result.global_step}, {shown(result.tokens_per_second, '.0f')} tokens/s")


def _next_steps(config, result, promoted: str | None) -> list[str]:
    """What to run next: serve the pushed adapter (and open the playground), or generate with it."""
    from sqlfoundry.storage.backends import absolute_local_path

    if not result.pushed_version:
        return [f"next: sqlfoundry generate --adapter {result.adapter_dir} --schema 'CREATE TABLE ...' "
                "--question '...'"] if result.adapter_dir else []
    # serve_configs/local.yaml serves the registry outputs/registry; any other one needs --set
    same = absolute_local_path(config.output.push_to) == absolute_local_path(LOCAL_REGISTRY)
    registry = "" if same else f" --set registry={config.output.push_to}"
    ref = f"{config.output.adapter_name}@{promoted or result.pushed_version}"
    return [f"next: sqlfoundry serve --config serve_configs/local.yaml{registry}",
            f"      then open http://127.0.0.1:8000/ui (playground) and pick {ref}, or POST "
            f"http://127.0.0.1:8000/v1/sql with \"adapter\": \"{ref}\" (README, Serving)"]


def _report(config, result, promoted: str | None) -> None:
    data = result.data_report
    if data:  # a remote run (rank 0 on another node) returns none
        say(f"data {data['source']}: read {data['rows_read']}, dropped {sum(data['dropped'].values())} and "
            f"{data['duplicates']} duplicates -> train {data['train_rows']}, eval {data['eval_rows']} "
            "(output.dir/data_report.json)")
    if result.resumed_from_step:
        say(f"resumed ray.run_name {config.ray.run_name!r} from its step-{result.resumed_from_step} checkpoint in "
            f"{config.ray.storage_path} (same config); --fresh starts over")
    say(_train_summary(result))
    if result.generation_exact_match is not None:
        accuracy = result.generation_execution_accuracy
        executed = "n/a" if accuracy is None else f"{accuracy:.1%}"
        say(f"on {len(result.generation_samples)} held-out rows: execution accuracy {executed}, "
            f"exact match {result.generation_exact_match:.1%}")
        for sample in result.generation_samples[:3]:
            say(f"  Q: {sample['question']}\n     gold: {sample['gold']}\n     pred: {sample['prediction']}")
    if result.adapter_dir:
        say(f"adapter saved to {result.adapter_dir}")
    if result.pushed_version:
        alias = f", alias {promoted}" if promoted else ""
        say(f"pushed to {config.output.push_to} as {config.output.adapter_name}@{result.pushed_version}{alias}")
    for line in _next_steps(config, result, promoted):
        say(line)


def cmd_train(args) -> int:
    from sqlfoundry.config import ConfigError, load_config
    from sqlfoundry.logs import TrainingBar, quiet

    config = load_config(args.config, args.overrides)
    if args.address:
        config.ray.address = args.address
    if args.promote and not config.output.push_to:
        raise ConfigError("--promote needs output.push_to (the registry the adapter is pushed to)")
    if not args.verbose:
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # the log file gets every worker's line, not "[repeated]"
    bar = TrainingBar()
    with quiet(Path(config.output.dir) / "train.log", args.verbose) as log_file:
        logging.getLogger(__name__).info("sqlfoundry train --config %s %s", args.config, " ".join(args.overrides))
        say(f"log: {log_file} (library logs, warnings, Ray's worker output; --verbose shows them here too)")
        try:
            result = _run_training(args, config, bar)
        except Exception:
            logging.getLogger(__name__).exception("training failed")
            say(f"training failed; the whole log is in {log_file}")
            raise
        finally:
            bar.close()
        promoted = None
        if args.promote and result.pushed_version:
            from sqlfoundry.storage.registry import Registry

            Registry(config.output.push_to).promote(config.output.adapter_name, result.pushed_version, args.promote)
            promoted = args.promote
        elif args.promote:  # rank 0 ran on another node and its result did not come back with the version
            say(f"--promote {args.promote}: the pushed version is unknown here; promote it with `sqlfoundry "
                f"adapters --registry {config.output.push_to} promote {config.output.adapter_name} VERSION "
                f"--alias {args.promote}` (`adapters list` shows the versions)")
    _report(config, result, promoted)
    return 0


def _run_training(args, config, bar):
    if args.no_ray:
        from sqlfoundry.training import train
        from sqlfoundry.training.progress import ProgressCallback

        return train(config, extra_callbacks=[ProgressCallback(bar)])
    from sqlfoundry.training.ray_train import train_with_ray

    where = config.ray.address or os.environ.get("RAY_ADDRESS") or "an embedded local Ray"
    say(f"starting {config.ray.num_workers} Ray Train worker(s) on {where}")
    return train_with_ray(config, resume="fresh" if args.fresh else "anyway" if args.resume_anyway else "check",
                          progress=bar)


def cmd_tune(args) -> int:
    from sqlfoundry.config import load_config
    from sqlfoundry.tuning.run import tune_run

    config = load_config(args.config, args.overrides)
    if args.address:
        config.ray.address = args.address
    outcome = tune_run(config, promote=args.promote)
    print(json.dumps({"best": outcome.best, "restored": outcome.restored, "files": outcome.files,
                      "best_adapter_dir": outcome.best_adapter_dir, "pushed_version": outcome.pushed_version,
                      "promoted": outcome.promoted}, indent=2, default=str))
    return 0 if outcome.best else 1


def register(commands) -> None:
    train = commands.add_parser(
        "train", help="fine-tune a model with LoRA+ and NEFTune from a YAML config",
        description="Prepare the data, fine-tune LoRA adapters (optionally on a 4-bit NF4 base) on Ray Train "
                    "workers (section `ray`: workers, GPUs, checkpoint storage, restarts) and save adapter, "
                    "tokenizer, resolved config, data report and metrics to output.dir; push the adapter to "
                    "the registry when output.push_to is set. Rerunning with the same ray.run_name and "
                    "ray.storage_path resumes from the latest checkpoint when the config is the same; a "
                    "changed config is refused (naming the keys) unless --fresh or --resume-anyway. The console "
                    "shows one progress bar and a summary; library logs, warnings and Ray's worker output go to "
                    "output.dir/train.log (--verbose: to the console too).",
    )
    add_config_args(train)
    add_address_arg(train)
    train.add_argument("--no-ray", action="store_true",
                       help="run the recipe in this process without Ray (single worker, no Ray checkpoints)")
    train.add_argument("--promote", metavar="ALIAS",
                       help="point ALIAS (e.g. production) at the pushed adapter (needs output.push_to)")
    add_verbose_arg(train)
    rerun = train.add_mutually_exclusive_group()
    rerun.add_argument("--fresh", action="store_true",
                       help="start over: delete the checkpoints of an earlier run with the same ray.run_name")
    rerun.add_argument("--resume-anyway", action="store_true",
                       help="resume an earlier run even though its config differs (the manifest records both)")
    train.set_defaults(func=cmd_train)

    tune = commands.add_parser(
        "tune", help="search the LoRA+ ratio and learning rate with Ray Tune; keep the best adapter",
        description="Run one fine-tune per point of the `tune.search_space` (default: loraplus.ratio in "
                    "{1,2,4,8,16,32} x training.learning_rate in {1e-4,2e-4}) with per-trial resources, an ASHA "
                    "scheduler fed by tune.metric (eval_loss or execution_accuracy) at every evaluation, and "
                    "write tune_results.{csv,json,png} to output.dir. The best completed trial's adapter goes to "
                    "output.dir/best_adapter and, with output.push_to, to the registry (tuning results in its "
                    "manifest). Rerunning with the same tune.run_name and ray.storage_path resumes the search.",
    )
    add_config_args(tune)
    add_address_arg(tune)
    tune.add_argument("--promote", metavar="ALIAS", help="point ALIAS (e.g. production) at the pushed best adapter")
    tune.set_defaults(func=cmd_tune)
