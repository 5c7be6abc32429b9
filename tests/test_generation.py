import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sqlfoundry.sql.compare import exact_match, normalize_sql
from sqlfoundry.modeling.generation import extract_sql, generate_sql


@pytest.mark.parametrize(
    "text, sql",
    [
        ("SELECT a FROM t", "SELECT a FROM t"),
        ("SELECT a FROM t;", "SELECT a FROM t"),
        ("  SELECT a\n  FROM t\n  WHERE b = 1 ", "SELECT a FROM t WHERE b = 1"),
        ("```sql\nSELECT a FROM t\n```", "SELECT a FROM t"),
        ("```\nSELECT a FROM t;\n```\nThis returns a.", "SELECT a FROM t"),
        ("Here is the query:\n```sqlite\nSELECT COUNT(*) FROM t\n```", "SELECT COUNT(*) FROM t"),
        ("Sure! The answer is SELECT a FROM t WHERE x > 3; it filters rows.", "SELECT a FROM t WHERE x > 3"),
        ("SELECT a FROM t\n\nExplanation: selects column a.", "SELECT a FROM t"),
        ("SELECT a FROM t WHERE b = 'x; y'; extra", "SELECT a FROM t WHERE b = 'x; y'"),
        ('SELECT a FROM t WHERE b = "semi;colon"', 'SELECT a FROM t WHERE b = "semi;colon"'),
        ("with x as (select 1) select * from x", "with x as (select 1) select * from x"),
        ("SELECT a FROM t; DROP TABLE t;", "SELECT a FROM t"),
        ("DROP TABLE t", "DROP TABLE t"),  # writes are extracted, so validators can reject them
        ("I cannot answer that.", ""),
        ("", ""),
        ("```sql\n```", ""),
    ],
)
def test_extract_sql(text, sql):
    assert extract_sql(text) == sql


@pytest.mark.parametrize(
    "prediction, gold, same",
    [
        ("SELECT a FROM t", "select a from t;", True),
        ('SELECT a FROM t WHERE b = "x"', "SELECT a FROM t WHERE b = 'x'", True),
        ("SELECT  a\nFROM t", "SELECT a FROM t", True),
        ("SELECT a FROM t", "SELECT b FROM t", False),
    ],
)
def test_exact_match(prediction, gold, same):
    assert exact_match(prediction, gold) is same
    assert (normalize_sql(prediction) == normalize_sql(gold)) is same


def test_batched_generation_matches_one_at_a_time(tiny_model_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    schemas = ["CREATE TABLE a (x INTEGER)", "CREATE TABLE books (title VARCHAR, pages INTEGER, genre VARCHAR)",
               "CREATE TABLE c (y VARCHAR)"]
    questions = ["How many?", "List the title of all books with more than 300 pages, please.", "Which y?"]
    batched = generate_sql(model, tokenizer, schemas, questions, max_new_tokens=12, batch_size=3)
    single = [generate_sql(model, tokenizer, [s], [q], max_new_tokens=12)[0] for s, q in zip(schemas, questions)]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(0 < g.completion_tokens <= 12 and g.prompt_tokens > 10 for g in batched)
    assert tokenizer.padding_side == "right" and model.training is False


def test_generation_needs_matching_inputs(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="2 schemas but 1 questions"):
        generate_sql(model, tokenizer, ["a", "b"], ["q"])
