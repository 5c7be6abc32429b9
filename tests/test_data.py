import json
from collections import Counter

import pytest

from sqlfoundry.config.schema import ColumnMapping, DataConfig
from sqlfoundry.data.formatting import prompt_messages, render_prompt, training_example
from sqlfoundry.data.prepare import prepare_data, prepare_rows, row_problem
from sqlfoundry.data.sources import DataError, load_raw_rows
from sqlfoundry.sql.schema import SchemaError, parse_schema
from sqlfoundry.data.synth import generate_rows

GOOD = {"question": "How many heads are older than 56?", "context": "CREATE TABLE head (age INTEGER)",
        "answer": "SELECT COUNT(*) FROM head WHERE age > 56"}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"question": None}, "missing_question"),
        ({"answer": None}, "missing_answer"),
        ({"context": "   "}, "empty_context"),
        ({"question": ""}, "empty_question"),
        ({"answer": 42}, "non_text_answer"),
        ({"context": "INSERT INTO head VALUES (1)"}, "context_not_create_table"),
        ({"context": "CREATE TABLE head (age INTEGER"}, "context_not_create_table"),
        ({"context": "CREATE TABLE head (age INTEGER); DROP TABLE head"}, "context_not_create_table"),
        ({"context": "CREATE VIEW v AS SELECT 1"}, "context_not_create_table"),
        ({"context": "this is not sql"}, "context_not_create_table"),
    ],
)
def test_row_problems(change, reason):
    assert row_problem({**GOOD, **change}) == reason


def test_parse_schema_reads_tables_and_types():
    tables = parse_schema("CREATE TABLE a (x INTEGER, y VARCHAR); CREATE TABLE b (z REAL)")
    assert [(t.name, t.column_names) for t in tables] == [("a", ("x", "y")), ("b", ("z",))]
    assert tables[0].columns[1].type == "VARCHAR"
    with pytest.raises(SchemaError):
        parse_schema("")


def test_bad_rows_counted_by_reason_duplicates_and_split():
    rows = [dict(GOOD, question=f"question number {i}") for i in range(20)]
    rows += [dict(GOOD, question="Question Number 3 "),  # duplicate after normalization
             dict(GOOD, answer=""), dict(GOOD, context="DROP TABLE head"), {"question": "q"}]
    prepared = prepare_rows(rows, DataConfig(eval_size=5, seed=1), "test", progress=False)
    report = prepared.report
    assert report.rows_read == 24
    assert report.dropped == {"empty_answer": 1, "context_not_create_table": 1, "missing_context": 1}
    assert report.duplicates == 1
    assert (report.rows_valid, report.train_rows, report.eval_rows) == (20, 15, 5)
    assert not {r["question"] for r in prepared.train} & {r["question"] for r in prepared.eval}


def test_split_is_deterministic_by_seed_and_sample_size():
    rows = generate_rows(300, seed=3)
    a = prepare_rows(rows, DataConfig(seed=9, sample_size=100, eval_size=0.2), "s", progress=False)
    b = prepare_rows(rows, DataConfig(seed=9, sample_size=100, eval_size=0.2), "s", progress=False)
    c = prepare_rows(rows, DataConfig(seed=10, sample_size=100, eval_size=0.2), "s", progress=False)
    assert (len(a.train), len(a.eval)) == (80, 20)
    assert a.train == b.train and a.eval == b.eval and a.report.fingerprint == b.report.fingerprint
    assert a.report.fingerprint != c.report.fingerprint


def test_eval_size_must_leave_training_rows():
    with pytest.raises(ValueError, match="data.eval_size"):
        prepare_rows([GOOD], DataConfig(eval_size=1), "s", progress=False)


def test_decontamination_drops_rows_seen_in_exclude_files(tmp_path):
    rows = [dict(GOOD, question=f"question {i}", answer=f"SELECT {i} FROM head") for i in range(10)]
    held_out = tmp_path / "heldout.jsonl"
    held_out.write_text(
        json.dumps(dict(GOOD, question="QUESTION 1?", answer="other")) + "\n"  # same question
        + json.dumps(dict(GOOD, question="new wording", answer="select 2 from  head;")) + "\n"  # same schema + SQL
    )
    prepared = prepare_rows(rows, DataConfig(eval_size=2, exclude=[str(held_out)]), "s", progress=False)
    kept = {r["question"] for r in prepared.train + prepared.eval}
    assert prepared.report.excluded == 2
    assert "question 1" not in kept and "question 2" not in kept and len(kept) == 8


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet", "folder"])
def test_local_sources(tmp_path, fmt):
    rows = [dict(GOOD, question=f"q{i}") for i in range(6)]
    if fmt == "json":
        path = tmp_path / "d.json"
        path.write_text(json.dumps(rows))
    elif fmt == "jsonl" or fmt == "folder":
        path = tmp_path / "d.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        path = tmp_path if fmt == "folder" else path
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "d.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    assert load_raw_rows(DataConfig(source=str(path))) == rows


def test_column_mapping(tmp_path):
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"text": "q", "schema": GOOD["context"], "sql": GOOD["answer"]}) + "\n")
    mapping = ColumnMapping(question="text", context="schema", answer="sql")
    assert load_raw_rows(DataConfig(source=str(path), columns=mapping)) == [
        {"question": "q", "context": GOOD["context"], "answer": GOOD["answer"]}]
    with pytest.raises(DataError, match=r"data.columns.question='question'"):
        load_raw_rows(DataConfig(source=str(path)))


@pytest.mark.parametrize(
    "source, message",
    [
        ("/no/such/file.json", "no such file"),
        ("synthetic://zero", "synthetic://N"),
        ("s3://no-such-bucket-for-data/data.json", "does not exist"),
        ("b-mc2/sql-create-context", "Hugging Face Hub"),  # tests run with the Hub offline
    ],
)
def test_unreadable_sources_say_why(source, message, s3_server):
    with pytest.raises(DataError, match=message):
        load_raw_rows(DataConfig(source=source))


def test_synthetic_source_and_prepare_data():
    prepared = prepare_data(DataConfig(source="synthetic://200", eval_size=10), progress=False)
    assert prepared.report.rows_read == 200 and prepared.report.eval_rows == 10
    assert prepared.report.train_rows == prepared.report.rows_valid - 10


def test_one_prompt_format_for_training_and_inference(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    example = training_example(GOOD)
    assert example["prompt"] == prompt_messages(GOOD["context"], GOOD["question"])
    assert GOOD["context"] in example["prompt"][0]["content"]
    assert example["completion"] == [{"role": "assistant", "content": GOOD["answer"]}]
    prompt = render_prompt(tokenizer, GOOD["context"], GOOD["question"])
    full = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
    assert full.startswith(prompt) and prompt.endswith("<|im_start|>assistant\n")


def test_s3_source(s3_bucket):
    import boto3

    rows = [dict(GOOD, question=f"q{i}") for i in range(4)]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="data/part-0.jsonl", Body=body)
    client.put_object(Bucket=s3_bucket, Key="data/part-1.jsonl", Body=body)
    assert load_raw_rows(DataConfig(source=f"s3://{s3_bucket}/data/part-0.jsonl")) == rows
    assert len(load_raw_rows(DataConfig(source=f"s3://{s3_bucket}/data"))) == 8
    with pytest.raises(DataError, match="no .json"):
        load_raw_rows(DataConfig(source=f"s3://{s3_bucket}/nothing-here"))


NAMED = {"question": "q", "context": "CREATE TABLE singer (name VARCHAR, age INTEGER)",
         "answer": "SELECT name FROM singer WHERE age > 30"}
WIKI = {"question": "q", "context": "CREATE TABLE table_name_3 (team VARCHAR, wins INTEGER)",
        "answer": 'SELECT team FROM table_name_3 WHERE wins > 3'}
MIX_ROWS = [dict(NAMED, question=f"named {i}") for i in range(40)] + [dict(WIKI, question=f"wiki {i}") for i in range(60)]


@pytest.mark.parametrize("mix, named, wikisql", [
    ({}, 1.0, 1.0),
    ({"named": 2.0}, 2.0, 1.0),
    ({"named": 3.0, "wikisql": 0.0}, 3.0, 0.0),
    ({"wikisql": 0.5}, 1.0, 0.5),
])
def test_mix_weights_training_rows_by_origin(mix, named, wikisql):
    from sqlfoundry.data.mix import row_origin

    config = DataConfig(eval_size=10, seed=2, mix=mix)
    prepared = prepare_rows(MIX_ROWS, config, "s", progress=False)
    plain = prepare_rows(MIX_ROWS, DataConfig(eval_size=10, seed=2), "s", progress=False)
    assert prepared.eval == plain.eval  # mixing changes the training rows only
    counts = Counter(row_origin(r) for r in prepared.train)
    base = Counter(row_origin(r) for r in plain.train)
    for origin, weight in (("named", named), ("wikisql", wikisql)):
        if weight == int(weight):
            assert counts[origin] == base[origin] * weight
        else:
            assert 0.25 * base[origin] < counts[origin] < 0.75 * base[origin]
        if mix:
            assert prepared.report.mix[origin] == {"weight": weight, "rows": base[origin], "sampled": counts[origin]}
    assert prepared.report.train_rows == len(prepared.train)
    assert prepare_rows(MIX_ROWS, config, "s", progress=False).train == prepared.train


def test_mix_that_leaves_no_training_rows_is_refused():
    with pytest.raises(ValueError, match="data.mix"):
        prepare_rows(MIX_ROWS[:40], DataConfig(eval_size=4, mix={"named": 0}), "s", progress=False)


def test_prepare_augments_training_rows_and_gives_eval_rows_the_realistic_view():
    from sqlfoundry.data.augment import realistic_view

    broken = [dict(WIKI, question=f"broken {i}", answer="SELECT team FROM table_name_3 WHERE wins > 3 OFFSET 033")
              for i in range(12)]  # a WikiSQL gold sqlite cannot run: kept unaugmented, counted
    rows = generate_rows(300, seed=8) + broken
    config = DataConfig(eval_size=20, seed=5, augment={"enabled": True, "probability": 0.75, "seed": 1})
    prepared = prepare_rows(rows, config, "s", progress=False)
    plain = prepare_rows(rows, DataConfig(eval_size=20, seed=5), "s", progress=False)
    report = prepared.report
    assert [r["question"] for r in prepared.train] == [r["question"] for r in plain.train]
    assert report.augmented + report.augment_skipped + sum(report.augment_failed.values()) == report.train_rows
    assert report.augmented > 0.5 * report.train_rows and report.augment_skipped > 0
    assert report.augment_failed.get("gold_error", 0) >= 1
    changed = sum(a["context"] != b["context"] for a, b in zip(prepared.train, plain.train))
    assert changed == report.augmented
    assert report.eval_view == "realistic" and prepared.eval == realistic_view(plain.eval)[0]
    assert [r["question"] for r in prepared.eval] == [r["question"] for r in plain.eval]  # the same rows held out
    again = prepare_rows(rows, config, "s", progress=False)
    assert again.train == prepared.train and again.report.fingerprint == report.fingerprint != plain.report.fingerprint
    assert "augmented" in report.summary() and json.loads(json.dumps(report.to_dict()))["augment_failed"]
