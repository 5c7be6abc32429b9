import json
import sqlite3

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


def test_synthetic_sql_executes_on_sqlite_for_every_row():
    rows = generate_rows(1500, seed=11)
    kinds = {"JOIN": 0, "GROUP BY": 0, "ORDER BY": 0, "COUNT(": 0, "AVG(": 0, "SUM(": 0, "MIN(": 0,
             "MAX(": 0, " AND ": 0, " OR ": 0, " < ": 0, " > ": 0, " = ": 0, "LIMIT": 0}
    for row in rows:
        assert row_problem(row) is None
        db = sqlite3.connect(":memory:")
        for statement in row["context"].split(";"):
            db.execute(statement)
        for table in parse_schema(row["context"]):
            values = ", ".join("1" if c.type != "VARCHAR" else "'x'" for c in table.columns)
            db.execute(f"INSERT INTO {table.name} VALUES ({values})")
        db.execute(row["answer"]).fetchall()  # raises on any invalid SQL
        for kind in kinds:
            kinds[kind] += kind in row["answer"]
        assert not any(word in row["question"] for word in ("SELECT", "FROM ", "WHERE"))
    assert all(count > 10 for count in kinds.values()), kinds


def test_synthetic_rows_are_deterministic():
    assert generate_rows(50, seed=5) == generate_rows(50, seed=5) != generate_rows(50, seed=6)


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
