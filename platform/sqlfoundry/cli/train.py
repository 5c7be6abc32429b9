"""`sqlfoundry train` and `sqlfoundry tune`: fine-tune on Ray Train, search on Ray Tune."""

from __future__ import annotations

import json

from sqlfoundry.cli.common import add_address_arg, add_config_args


def _train_summary(result) -> str:
    """One line of what a run reports; a remote run (rank 0 on another node) may lack some metrics."""
    def shown(value, fmt):
        return "n/a" if value is None else format(value, fmt)

    return (f"train loss {shown(result.train_loss, '.4f')}, eval loss {shown(result.eval_loss, '.4f')}, "
            f"steps {result.global_step}, {shown(result.tokens_per_second, '.0f')} tokens/s")


def cmd_train(args) -> int:
    from sqlfoundry.config import load_config

    config = load_config(args.config, args.overrides)
    if args.no_ray:
        from sqlfoundry.training import train

        result = train(config)
    else:
        from sqlfoundry.training.ray_train import train_with_ray

        if args.address:
            config.ray.address = args.address
        result = train_with_ray(config, resume="fresh" if args.fresh else "anyway" if args.resume_anyway else "check")
    print(_train_summary(result))
    if result.generation_exact_match is not None:
        print(f"exact match on {len(result.generation_samples)} eval rows: {result.generation_exact_match:.1%}")
        for sample in result.generation_samples[:5]:
            print(f"  Q: {sample['question']}\n     gold: {sample['gold']}\n     pred: {sample['prediction']}")
    if result.adapter_dir:
        print(f"adapter saved to {result.adapter_dir}")
    if result.pushed_version:
        print(f"pushed to {config.output.push_to} as {config.output.adapter_name}@{result.pushed_version}")
    return 0


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
                    "changed config is refused (naming the keys) unless --fresh or --resume-anyway.",
    )
    add_config_args(train)
    add_address_arg(train)
    train.add_argument("--no-ray", action="store_true",
                       help="run the recipe in this process without Ray (single worker, no Ray checkpoints)")
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
