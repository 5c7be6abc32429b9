"""Training prompts with retrieved examples (strategy.few_shot_k, issue 12): each training row shows
its k most similar OTHER training rows, retrieved and rendered exactly as serving does, and the
adapter records k so inference retrieves as many."""

from __future__ import annotations

import json

import pytest
from trl.data_utils import _tokenize  # what SFTTrainer tokenizes a conversational prompt with

from sqlfoundry.answering.pipeline import Pipeline
from sqlfoundry.answering.retrieve import ExampleIndex
from sqlfoundry.config.loader import ConfigError, apply_overrides, parse_config
from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT, DataConfig, ModelConfig, StrategyConfig
from sqlfoundry.data.examples import checked_examples, read_examples, write_examples
from sqlfoundry.data.formatting import render_prompt, training_example
from sqlfoundry.data.prepare import EXAMPLES_KEY, DataReport, PreparedData, fingerprint, prepare_rows
from sqlfoundry.data.synth import generate_rows
from sqlfoundry.modeling.loading import ADAPTER_META, load_tokenizer
from sqlfoundry.training.recipe import _datasets, few_shot

HEAD = "CREATE TABLE head (name VARCHAR, age INTEGER, born_state VARCHAR)"
ROW = {"question": "How many heads are older than 56?", "context": HEAD,
       "answer": "SELECT COUNT(*) FROM head WHERE age > 56"}
# Similar rows with other answers: retrieval must still find them (the exclusion is not too broad).
NEIGHBOURS = [
    {"question": "How many heads are older than 60?", "context": HEAD,
     "answer": "SELECT COUNT(*) FROM head WHERE age > 60"},
    {"question": "How many heads were born in Alabama?", "context": HEAD,
     "answer": "SELECT COUNT(*) FROM head WHERE born_state = 'Alabama'"},
    {"question": "List the names of heads older than 56", "context": HEAD,
     "answer": "SELECT name FROM head WHERE age > 56"},
]
SAME_QUESTION = {**ROW, "question": "how many  HEADS are older than 56"}
PARAPHRASE = {**ROW, "question": "Count the heads whose age is above 56"}  # same schema, same SQL


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir)))


def _prepared(train, eval_rows=()):
    return PreparedData(train=[dict(r) for r in train], eval=[dict(r) for r in eval_rows], report=DataReport("rows"))


def _synthetic(data: DataConfig) -> PreparedData:
    return prepare_rows(generate_rows(200, seed=7), data, "synthetic", progress=False)


# -- (a) the row itself and its duplicates are never its examples ----------------------------------
@pytest.mark.parametrize("case, train, eval_rows, leaks", [
    ("the row itself", [ROW, *NEIGHBOURS], [], [ROW]),
    ("data.mix repeats the row", [ROW, *NEIGHBOURS, ROW], [], [ROW]),
    ("same question, other case and spacing", [ROW, *NEIGHBOURS, SAME_QUESTION], [], [ROW, SAME_QUESTION]),
    ("same schema and SQL, other question", [ROW, *NEIGHBOURS, PARAPHRASE], [], [ROW, PARAPHRASE]),
    ("eval row: a training paraphrase", [*NEIGHBOURS, PARAPHRASE], [ROW], [ROW, PARAPHRASE]),
])
def test_retrieval_never_returns_the_row_itself_or_a_duplicate(case, train, eval_rows, leaks):
    prepared = _prepared(train, eval_rows)
    few_shot(prepared, k=8)
    rows = prepared.eval if eval_rows else [r for r in prepared.train if r["question"] == ROW["question"]]
    assert rows, case
    for row in rows:
        shown = row[EXAMPLES_KEY]
        assert not [example for example in shown if example in leaks], case
        assert sorted(e["question"] for e in shown) == sorted(n["question"] for n in NEIGHBOURS), case


@pytest.mark.parametrize("exclude", [(), {0}, {2}, {0, 2}, {0, 1, 2}])
def test_search_leaves_out_excluded_positions_and_keeps_the_ranking(exclude):
    index = ExampleIndex(NEIGHBOURS)
    ranked = [NEIGHBOURS.index(row) for row in index.search(ROW["question"], HEAD, 3)]
    assert sorted(ranked) == [0, 1, 2]
    kept = [NEIGHBOURS[i] for i in ranked if i not in exclude][:2]
    assert index.search(ROW["question"], HEAD, 2, exclude) == kept


# -- (b) training and serving prompts with k examples are the same tokens --------------------------
@pytest.mark.parametrize("k, system_prompt, mix", [
    (1, DEFAULT_SYSTEM_PROMPT, {}),
    (2, "SCHEMA:\n{schema}", {}),
    (4, DEFAULT_SYSTEM_PROMPT, {"wikisql": 2}),  # repeated rows: both copies are left out
])
def test_training_prompts_with_k_examples_match_the_served_prompts(tokenizer, tmp_path, k, system_prompt, mix):
    prepared = _synthetic(DataConfig(eval_size=8, seed=1, mix=mix))
    pool = few_shot(prepared, k)
    write_examples(tmp_path, pool)  # what training puts next to the adapter
    pipeline = Pipeline.from_strategy(StrategyConfig(few_shot_k=k), tmp_path)
    train_ds, eval_ds = _datasets(prepared, system_prompt)
    checked = 0
    for rows, dataset in ((prepared.train[:40], train_ds), (prepared.eval, eval_ds)):
        for row, example in zip(rows, dataset):
            trained = _tokenize(tokenizer, example["prompt"], add_generation_prompt=True)["input_ids"]
            plan = pipeline.plan(row["context"], row["question"])
            served = render_prompt(tokenizer, plan.schema, plan.question, system_prompt, examples=plan.examples)
            assert len(plan.examples) == k and plan.examples == row[EXAMPLES_KEY]
            assert trained == tokenizer(served, add_special_tokens=False)["input_ids"]
            checked += 1
    assert checked == 40 + len(prepared.eval)


# -- (c) k = 0 changes nothing --------------------------------------------------------------------
@pytest.mark.parametrize("data", [DataConfig(eval_size=8, seed=1),
                                  DataConfig(eval_size=0.1, seed=3, mix={"wikisql": 2})])
def test_without_examples_training_prompts_are_unchanged(tokenizer, data):
    before = _synthetic(data)
    prepared = _synthetic(data)
    pool = few_shot(prepared, 0)
    assert pool == checked_examples(before.train)[0]  # examples.jsonl as before
    assert (prepared.train, prepared.eval) == (before.train, before.eval)
    assert prepared.report.fingerprint == fingerprint(before.train, before.eval)
    for rows, dataset in zip((before.train, before.eval), _datasets(prepared, DEFAULT_SYSTEM_PROMPT)):
        for row, example in zip(rows, dataset, strict=True):
            old = training_example(row, DEFAULT_SYSTEM_PROMPT)
            assert json.dumps(example, sort_keys=True) == json.dumps(old, sort_keys=True)
            assert (tokenizer.apply_chat_template(example["prompt"], tokenize=False, add_generation_prompt=True)
                    == tokenizer.apply_chat_template(old["prompt"], tokenize=False, add_generation_prompt=True))


# -- (d) the adapter records k; inference takes it unless the strategy says otherwise ---------------
@pytest.mark.parametrize("k", [0, 2])
def test_the_adapter_metadata_records_k(tiny_model_dir, tmp_path, k):
    from test_training import tiny_config

    from sqlfoundry.data.prepare import prepare_data
    from sqlfoundry.training import train
    from sqlfoundry.training.recipe import drop_too_long

    out = tmp_path / "run"
    config = tiny_config(tiny_model_dir, out, f"strategy.few_shot_k={k}", "training.max_steps=2",
                         "training.eval_steps=2", "training.save_steps=2", "training.max_length=768",
                         "training.final_generation_samples=2", "data.eval_size=4", source="synthetic://60")
    result = train(config)
    # the rows trained on carry their examples: the run's data fingerprint is theirs
    prepared, tokenizer = prepare_data(config.data, progress=False), load_tokenizer(config.model)
    drop_too_long(prepared, tokenizer, config.data.system_prompt, config.training.max_length)
    plain = prepared.report.fingerprint
    few_shot(prepared, k)
    drop_too_long(prepared, tokenizer, config.data.system_prompt, config.training.max_length)
    assert result.data_report["fingerprint"] == prepared.report.fingerprint
    assert (prepared.report.fingerprint != plain) == bool(k)
    adapter = out / "adapter"
    assert json.loads((adapter / ADAPTER_META).read_text())["few_shot_k"] == k
    assert len(read_examples(adapter / "examples.jsonl")) >= result.data_report["train_rows"]
    assert len(result.generation_samples) == 2
    assert Pipeline.from_strategy(StrategyConfig(), adapter).strategy.few_shot_k == k
    assert Pipeline.from_strategy(StrategyConfig(few_shot_k=1), adapter).strategy.few_shot_k == 1  # explicit wins
    assert Pipeline.from_strategy(StrategyConfig(few_shot_k=0), adapter).index is None


# -- (e) a k outside 0..8 is refused, naming the field ---------------------------------------------
@pytest.mark.parametrize("where, value", [
    ("config", 9), ("config", -1), ("config", "two"), ("override", "9"), ("override", "-1"),
    ("adapter metadata", 9), ("adapter metadata", -1),
])
def test_a_bad_k_is_refused_naming_the_field(tmp_path, where, value):
    with pytest.raises(ConfigError, match="few_shot_k"):
        if where == "config":
            parse_config({"strategy": {"few_shot_k": value}})
        elif where == "override":
            parse_config(apply_overrides({}, [f"strategy.few_shot_k={value}"]))
        else:
            (tmp_path / ADAPTER_META).write_text(json.dumps({"few_shot_k": value}))
            Pipeline.from_strategy(StrategyConfig(), tmp_path)
    if where != "adapter metadata":
        with pytest.raises(ConfigError, match=r"strategy\.few_shot_k: "):
            parse_config({"strategy": {"few_shot_k": value}})
