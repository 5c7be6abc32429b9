"""`sqlfoundry generate`, `sqlfoundry eval` and `sqlfoundry ask`: answers from a model, scored or run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlfoundry.cli.common import add_strategy_args, add_trust_arg, strategy_from_args, text_table


def cmd_generate(args) -> int:
    from sqlfoundry.answering.local import answer_questions
    from sqlfoundry.answering.pipeline import Pipeline
    from sqlfoundry.modeling.loading import load_for_inference, set_cpu_threads

    pipeline = Pipeline.from_strategy(strategy_from_args(args), args.adapter)
    set_cpu_threads()
    schema = Path(args.schema[1:]).read_text() if args.schema.startswith("@") else args.schema
    model, tokenizer, system_prompt = load_for_inference(args.adapter, args.base,
                                                         trust_remote_code=args.trust_remote_code)
    [(plan, choice)] = answer_questions(model, tokenizer, pipeline, [schema], [args.question],
                                        system_prompt=system_prompt, max_new_tokens=args.max_new_tokens)
    generation = choice.generation
    if args.json:
        print(json.dumps({"sql": generation.sql, "raw": generation.text, **choice.record(),
                          "pruned_tables": plan.pruned_tables, "pruned_columns": plan.pruned_columns}))
    else:
        print(generation.sql or f"(no SQL found in the model output: {generation.text!r})")
    return 0 if generation.sql else 1


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
    strategy = strategy_from_args(args)
    if not args.predictions:
        from sqlfoundry.answering.pipeline import Pipeline
        from sqlfoundry.modeling.loading import load_for_inference, set_cpu_threads

        pipeline = Pipeline.from_strategy(strategy, args.adapter)  # one database cache for every view and batch
        set_cpu_threads()
        model, tokenizer, system_prompt = load_for_inference(args.adapter, args.model,
                                                             trust_remote_code=args.trust_remote_code)

        def generate(batch):
            predict(batch, model, tokenizer, system_prompt, args.batch_size, args.max_new_tokens, pipeline)
    # the realistic view draws distractors from the whole file, so a row's view does not depend on --limit
    pool = load_examples(args.data) if "realistic" in views and args.limit else None
    map_chunks = None
    if os.environ.get("RAY_ADDRESS"):  # inside a Ray job: execute SQL as Ray tasks across the cluster
        from sqlfoundry.raylayer import ensure_ray, ray_map

        ensure_ray(os.environ["RAY_ADDRESS"])
        map_chunks = ray_map
    source = args.predictions or args.data
    settings = {"source": source, "adapter": args.adapter, "model": args.model, "limit": args.limit,
                "k_databases": args.k_databases, "seed": args.seed, "timeout_s": args.timeout,
                # the pipeline's: few_shot_k may be the adapter's own (Pipeline.from_strategy)
                "strategy": (pipeline.strategy if generate is not None else strategy).model_dump()}
    records = run_views(examples, views, generate, k=args.k_databases, seed=args.seed,
                        limits=Limits(timeout_s=args.timeout), pool=pool, map_chunks=map_chunks)
    summaries = write_views(records, args.out, f"Evaluation of {args.adapter or args.model or source}", settings)
    print((Path(args.out) / "summary.md").read_text())
    for view in records:
        folder = Path(args.out) / view if len(records) > 1 else Path(args.out)
        print(f"per-example results ({view} schemas): {folder / 'predictions.jsonl'}")
    return 0 if any(summary["examples"] for summary in summaries.values()) else 1


def cmd_ask(args) -> int:
    import os

    from sqlalchemy.engine import make_url

    from sqlfoundry.databases import Database, DatabaseError, run_candidate
    from sqlfoundry.databases.config import parse_database_config

    config = parse_database_config({"url": args.database, "password_env": args.password_env,
                                    "timeout_s": args.timeout, "max_rows": args.max_rows,
                                    "sample_values": args.sample_values}, "--database and its flags")
    name = Path(make_url(config.url).database or "database").stem
    db = Database(name, config, os.environ)
    try:
        snapshot = db.schema()
        from sqlfoundry.answering.execution import QueryFailed
        from sqlfoundry.answering.local import answer_questions
        from sqlfoundry.answering.pipeline import Pipeline
        from sqlfoundry.modeling.loading import load_for_inference, set_cpu_threads

        pipeline = Pipeline.from_strategy(strategy_from_args(args), args.adapter)
        set_cpu_threads()
        model, tokenizer, system_prompt = load_for_inference(args.adapter, args.base,
                                                             trust_remote_code=args.trust_remote_code)

        def on_the_database(sql: str) -> list[tuple]:
            """Candidates are voted on by their rows in this very database, not synthesized ones."""
            ran = run_candidate(db, sql, max_rows=args.max_rows, tables=snapshot.tables)
            if ran.error:
                raise QueryFailed(ran.error_kind or "runtime_error", ran.error)
            return [tuple(row) for row in ran.rows]

        executes = [[on_the_database]] if pipeline.candidates() > 1 else None
        [(_, choice)] = answer_questions(model, tokenizer, pipeline, [snapshot.text], [args.question],
                                         system_prompt=system_prompt, max_new_tokens=args.max_new_tokens,
                                         executes=executes)
        generation = choice.generation
        result = run_candidate(db, generation.sql, max_rows=args.max_rows, tables=snapshot.tables)
    except DatabaseError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0 if result.error is None else 1
    print(result.sql or f"(no SQL found in the model output: {generation.text!r})")
    if result.error:
        print(f"not run: {result.error}" if result.error_kind == "invalid" else f"error: {result.error}",
              file=sys.stderr)
        return 1
    print(text_table(result.columns, result.rows))
    print(f"({result.row_count} row{'s' if result.row_count != 1 else ''}"
          f"{', truncated at --max-rows' if result.truncated else ''})")
    return 0


def register(commands) -> None:
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
    add_trust_arg(generate)
    generate.add_argument("--json", action="store_true",
                          help="print JSON with the SQL, the raw output and how it was chosen")
    add_strategy_args(generate)
    generate.set_defaults(func=cmd_generate)

    ask = commands.add_parser(
        "ask", help="answer a question on a real database: print the SQL and the rows",
        description="Read the schema of --database (tables, columns, keys), generate SQL for --question with "
                    "--adapter (or a bare base model), transpile it to the database's dialect, check it and run "
                    "it read-only (PostgreSQL: a READ ONLY transaction with statement_timeout; DuckDB: "
                    "read_only; sqlite: mode=ro and an authorizer) with a time limit and a row cap. The password "
                    "comes from the environment variable named by --password-env, never from the URL.",
    )
    ask.add_argument("--database", required=True,
                     help="postgresql://user@host:port/db, sqlite:///path.db or duckdb:///path.duckdb")
    ask.add_argument("--question", required=True, help="the question in plain English")
    ask.add_argument("--password-env", help="environment variable holding the database password")
    ask.add_argument("--adapter", help="adapter folder written by `sqlfoundry train` (output.dir/adapter)")
    ask.add_argument("--base", help="base model (Hub id, folder or builtin alias); defaults to the adapter's own "
                                    "base, or the builtin model without --adapter")
    ask.add_argument("--max-rows", type=int, default=20, help="rows to print at most (20)")
    ask.add_argument("--timeout", type=float, default=10.0, help="seconds the query may run (10)")
    ask.add_argument("--sample-values", type=int, default=0,
                     help="distinct values per text column shown to the model (0)")
    ask.add_argument("--max-new-tokens", type=int, default=128, help="generation budget (default 128)")
    add_trust_arg(ask)
    ask.add_argument("--json", action="store_true", help="print the result as JSON (sql, columns, rows, ...)")
    add_strategy_args(ask)
    ask.set_defaults(func=cmd_ask)

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
    add_trust_arg(evaluate)
    evaluate.add_argument(
        "--view", choices=["original", "realistic", "both"],
        help="schemas to score on: the rows' own contexts (original), the same rows with distractor columns "
             "and tables (realistic, the headline), or both side by side (default: both for schema-only "
             "--data, original for --predictions and real databases)")
    evaluate.add_argument("--out", default="outputs/eval", help="output folder (outputs/eval)")
    add_strategy_args(evaluate)
    evaluate.set_defaults(func=cmd_eval)
