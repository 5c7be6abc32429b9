"""`sqlfoundry examples list|add`: the solved examples an adapter carries (its examples.jsonl), which
retrieval (--few-shot-k) draws from. ADAPTER is an adapter folder, or a registry ref (NAME,
NAME@VERSION, NAME@ALIAS) with --registry; adding to a registry ref publishes a new version, since
versions never change (promote it to move an alias)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sqlfoundry.cli.manage import _registry

# Manifest keys the registry writes itself on push; everything else is the adapter's metadata.
_REGISTRY_KEYS = {"name", "version", "created", "sqlfoundry_version", "files"}


def _key(row: dict) -> tuple[str, str]:
    return " ".join(row["question"].lower().split()), " ".join(row["context"].split())


def _merge(folder: Path, new_rows: list[dict]) -> tuple[int, int]:
    """Append the rows not already in the folder's examples; (added, already present)."""
    from sqlfoundry.data.examples import examples_path, read_examples, write_examples

    path = examples_path(folder)
    existing = read_examples(path) if path else []
    seen = {_key(row) for row in existing}
    added = []
    for row in new_rows:
        if _key(row) not in seen:
            seen.add(_key(row))
            added.append(row)
    write_examples(folder, existing + added)
    return len(added), len(new_rows) - len(added)


def _load_new_rows(file: str) -> tuple[list[dict], dict[str, int]]:
    from sqlfoundry.config.loader import ConfigError
    from sqlfoundry.config.schema import DataConfig
    from sqlfoundry.data.examples import checked_examples
    from sqlfoundry.data.sources import load_raw_rows

    rows, refused = checked_examples(load_raw_rows(DataConfig(), file))
    if not rows:
        raise ConfigError(f"--file {file}: no usable question/context/answer rows (refused: {refused or 'none read'}); "
                          "each row needs a question, a CREATE TABLE context and a read-only SQL answer")
    return rows, refused


def cmd_examples(args) -> int:
    from sqlfoundry.data.examples import examples_path, read_examples

    local = Path(args.adapter).is_dir()
    if args.examples_command == "list":
        if local:
            path = examples_path(args.adapter)
            rows = read_examples(path) if path else []
        else:
            with tempfile.TemporaryDirectory(prefix="sqlfoundry-examples-") as scratch:
                folder, _ = _registry(args).pull(args.adapter, Path(scratch) / "adapter")
                path = examples_path(folder)
                rows = read_examples(path) if path else []
        if args.json:
            print("".join(json.dumps(row) + "\n" for row in rows[: args.limit]), end="")
        else:
            print(f"{len(rows)} examples in {args.adapter}")
            for row in rows[: args.limit]:
                print(f"  Q: {row['question']}\n     {row['answer']}")
        return 0

    rows, refused = _load_new_rows(args.file)
    skipped = f"; refused {sum(refused.values())} rows: {refused}" if refused else ""
    if local:
        added, present = _merge(Path(args.adapter), rows)
        print(f"added {added} examples to {args.adapter} ({present} already there{skipped})")
        return 0
    registry = _registry(args)
    with tempfile.TemporaryDirectory(prefix="sqlfoundry-examples-") as scratch:
        folder, manifest = registry.pull(args.adapter, Path(scratch) / "adapter")
        added, present = _merge(folder, rows)
        metadata = {key: value for key, value in manifest.items() if key not in _REGISTRY_KEYS}
        metadata["examples_added"] = {"from_version": manifest["version"], "rows": added, "file": args.file}
        version = registry.push(folder, manifest["name"], metadata)
    name = manifest["name"]
    print(f"added {added} examples ({present} already there{skipped}): published {name}@{version}\n"
          f"point an alias at it with: sqlfoundry adapters --registry {args.registry or '$SQLFOUNDRY_REGISTRY'} "
          f"promote {name} {version} --alias production")
    return 0


def register(commands) -> None:
    examples = commands.add_parser(
        "examples", help="the solved examples an adapter carries for retrieval: list, add",
        description=__doc__,
    )
    examples.add_argument("--registry", help="registry root when ADAPTER is a ref (default $SQLFOUNDRY_REGISTRY)")
    actions = examples.add_subparsers(dest="examples_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="print the adapter's examples")
    listing.add_argument("adapter", metavar="ADAPTER")
    listing.add_argument("--limit", type=int, default=20, help="rows to print (20)")
    listing.add_argument("--json", action="store_true", help="JSONL rows instead of text")
    add = actions.add_parser("add", help="add question/SQL pairs (new registry version for a ref)")
    add.add_argument("adapter", metavar="ADAPTER")
    add.add_argument("--file", required=True,
                     help="JSON/JSONL/Parquet rows with question, context (CREATE TABLE ...) and answer (SQL)")
    examples.set_defaults(func=cmd_examples)
