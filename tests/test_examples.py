"""Examples that travel with an adapter: the examples.jsonl training writes, retrieval's fallback to
it, `sqlfoundry examples list|add` on folders and registry refs, and serving's explicit-file rule."""

from __future__ import annotations

import json

import pytest

from sqlfoundry.answering.pipeline import Pipeline
from sqlfoundry.cli import main
from sqlfoundry.config.loader import ConfigError, parse_config
from sqlfoundry.config.schema import StrategyConfig
from sqlfoundry.data.examples import checked_examples, read_examples, write_examples
from sqlfoundry.serving.config import ServeConfigError, parse_serve_config
from sqlfoundry.storage.registry import ChecksumError, Registry

HEAD = "CREATE TABLE head (name VARCHAR, age INTEGER, born_state VARCHAR)"
COUNT = {"question": "How many heads are there?", "context": HEAD, "answer": "SELECT COUNT(*) FROM head"}
OLDEST = {"question": "Who is the oldest head?", "context": HEAD,
          "answer": "SELECT name FROM head ORDER BY age DESC LIMIT 1"}


@pytest.mark.parametrize("row, reason", [
    (COUNT, None),
    ({**COUNT, "answer": "DELETE FROM head"}, "answer_not_read_only"),
    ({**COUNT, "answer": "SELEC name FROM"}, "answer_parse_error"),
    ({**COUNT, "context": "a table of heads"}, "context_not_create_table"),
    ({"question": "q", "context": HEAD}, "missing_answer"),
    ("not a row", "not_an_object"),
])
def test_only_read_only_solved_rows_become_examples(row, reason):
    kept, refused = checked_examples([row])
    assert (refused == {} and kept == [COUNT]) if reason is None else (kept == [] and refused == {reason: 1})


def test_retrieval_falls_back_to_the_adapters_examples_and_says_when_there_are_none(tmp_path):
    with pytest.raises(ConfigError, match=f"adapter {tmp_path} carries no examples.jsonl"):
        Pipeline.from_strategy(StrategyConfig(few_shot_k=2), tmp_path)
    with pytest.raises(ConfigError, match="no adapter is used: set strategy.examples"):
        Pipeline.from_strategy(StrategyConfig(few_shot_k=2))
    write_examples(tmp_path, [COUNT, OLDEST])
    plan = Pipeline.from_strategy(StrategyConfig(few_shot_k=1), tmp_path).plan(HEAD, "how many heads are older than 56")
    assert plan.examples == [COUNT]
    # an explicit file wins over the adapter's own
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(OLDEST) + "\n")
    plan = Pipeline.from_strategy(StrategyConfig(few_shot_k=1, examples=str(other)), tmp_path).plan(
        HEAD, "how many heads are older than 56")
    assert plan.examples == [OLDEST]


def test_serving_needs_an_examples_file_for_retrieval():
    with pytest.raises(ServeConfigError, match="strategy: .*few_shot_k > 0 needs strategy.examples"):
        parse_serve_config({"strategy": {"few_shot_k": 2}})
    assert parse_config({"strategy": {"few_shot_k": 2}}).strategy.examples is None  # the adapter's, if any


def test_examples_add_to_a_folder_dedupes_and_counts_refused_rows(tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    write_examples(adapter, [COUNT])
    rows = tmp_path / "mine.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in [COUNT, OLDEST, {**OLDEST, "answer": "DROP TABLE head"}]))
    assert main(["examples", "add", str(adapter), "--file", str(rows)]) == 0
    assert "added 1 examples" in capsys.readouterr().out
    assert read_examples(adapter / "examples.jsonl") == [COUNT, OLDEST]
    assert main(["examples", "list", str(adapter)]) == 0
    assert "2 examples" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**COUNT, "answer": "DELETE FROM head"}) + "\n")
    assert main(["examples", "add", str(adapter), "--file", str(bad)]) == 2
    assert "no usable question/context/answer rows" in capsys.readouterr().err


def test_examples_add_to_a_registry_ref_publishes_a_checksummed_new_version(tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    write_examples(adapter, [COUNT])
    registry = Registry(str(tmp_path / "registry"))
    first = registry.push(adapter, "sql", {"metrics": {"eval_loss": 0.5}})
    registry.promote("sql", first, "production")
    rows = tmp_path / "mine.jsonl"
    rows.write_text(json.dumps(OLDEST) + "\n")
    assert main(["examples", "--registry", str(tmp_path / "registry"), "add", "sql@production", "--file",
                 str(rows)]) == 0
    second = registry.versions("sql")[-1]
    assert second != first and registry.aliases("sql") == {"production": first}  # aliases move only by promote
    manifest = registry.manifest("sql", second)
    assert manifest["metrics"] == {"eval_loss": 0.5} and manifest["examples_added"]["rows"] == 1
    assert "examples.jsonl" in manifest["files"]
    folder, _ = registry.pull(f"sql@{second}", tmp_path / "pulled")
    assert read_examples(folder / "examples.jsonl") == [COUNT, OLDEST]
    capsys.readouterr()
    assert main(["examples", "--registry", str(tmp_path / "registry"), "list", f"sql@{second}", "--json"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [COUNT, OLDEST]
    # a tampered examples file is refused on pull, like every other file of the version
    stored = tmp_path / "registry" / "adapters" / "sql" / second / "examples.jsonl"
    stored.write_text(json.dumps({**COUNT, "answer": "SELECT 1"}) + "\n")
    with pytest.raises(ChecksumError, match="examples.jsonl"):
        registry.pull(f"sql@{second}", tmp_path / "again")
