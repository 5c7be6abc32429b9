"""Arguments shared by several subcommands, and small output helpers."""

from __future__ import annotations

import argparse


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML run config, e.g. jobs/configs/quickstart.yaml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config value, e.g. --set training.max_steps=50 (repeatable)",
    )


def add_verbose_arg(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: `sqlfoundry -v train` and `sqlfoundry train -v` both work (a default here would
    # overwrite the top-level flag)
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="also show library logs, warnings and Ray's worker output here (they always go "
                             "to the log file)")


def add_address_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local Ray)")


def add_trust_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow the base model's own Python code from its repository to run (off by default; "
                             "an adapter can never turn it on)")


def add_strategy_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("answering strategy (default: one greedy decode)")
    group.add_argument("--candidates", type=int, default=1,
                       help="completions per question: the greedy one plus N-1 sampled, executed and voted on (1)")
    group.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of candidates (0.7)")
    group.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling of candidates (0.95)")
    group.add_argument("--few-shot-k", type=int, default=None,
                       help="solved examples retrieved into the prompt (BM25) (default: the k the adapter was "
                            "trained with, 0 without one)")
    group.add_argument("--examples", help="JSON/JSONL question/context/answer rows to retrieve examples from (default: "
                       "the adapter's examples.jsonl, its training rows)")
    group.add_argument("--prune", action="store_true", help="drop tables/columns unrelated to the question "
                                                            "from wide schemas (keys and join columns stay)")
    group.add_argument("--prune-min-columns", type=int, default=16,
                       help="prune only schemas with more columns than this (16)")
    group.add_argument("--repair", action="store_true",
                       help="when no candidate passes the checks and runs, ask once more with the error")
    group.add_argument("--strategy-databases", type=int, default=3,
                       help="synthesized databases each candidate runs on for voting (3)")


_STRATEGY_FLAGS = {"candidates": "--candidates", "temperature": "--temperature", "top_p": "--top-p",
                   "few_shot_k": "--few-shot-k", "examples": "--examples", "prune_min_columns": "--prune-min-columns",
                   "databases": "--strategy-databases", "max_candidates": "--candidates"}


def strategy_from_args(args):
    """The StrategyConfig of the strategy flags; a bad value names its flag."""
    from pydantic import ValidationError

    from sqlfoundry.config.loader import ConfigError
    from sqlfoundry.config.schema import StrategyConfig

    values = {"candidates": args.candidates, "max_candidates": max(args.candidates, 1), "temperature": args.temperature,
              "top_p": args.top_p, "examples": args.examples, "prune": args.prune,
              "prune_min_columns": args.prune_min_columns, "repair": args.repair,
              "databases": args.strategy_databases}
    if args.few_shot_k is not None:  # unset: Pipeline.from_strategy takes the adapter's own k
        values["few_shot_k"] = args.few_shot_k
    try:
        return StrategyConfig(**values)
    except ValidationError as err:
        problems = []
        for item in err.errors():
            key = str(item["loc"][0]) if item["loc"] else ""
            problems.append(f"{_STRATEGY_FLAGS.get(key, 'strategy')}: {item['msg']}")
        raise ConfigError("; ".join(problems)) from None


def text_table(columns: list[str], rows: list[list]) -> str:
    """Rows as a plain text table, each column as wide as its widest value."""
    cells = [[str(c) for c in columns]] + [["NULL" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [" | ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([lines[0], "-+-".join("-" * w for w in widths), *lines[1:]])
