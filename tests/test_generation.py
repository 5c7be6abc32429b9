import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sqlfoundry.data.formatting import render_prompt
from sqlfoundry.sql.compare import exact_match, normalize_sql
from sqlfoundry.sql.extract import extract_sql
from sqlfoundry.modeling.generation import autocast_context, generate_batch, generate_sql, stop_token_ids


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
        # the first statement that parses, not the first word that looks like a keyword
        ("To select all heads older than 56:\nSELECT name FROM head", "SELECT name FROM head"),
        ("With this query you can list the heads:\nSELECT name FROM head WHERE age > 56",
         "SELECT name FROM head WHERE age > 56"),
        ("To replace the names, use:\nSELECT replace(name, 'a', 'b') FROM head",
         "SELECT replace(name, 'a', 'b') FROM head"),  # "replace the names, use: ..." parses only as a Command
        ("The SELECT below lists them:\n\nSELECT name FROM head", "SELECT name FROM head"),
        # an apostrophe in prose opens no string: before, inside or after the candidates
        ("Here's the query: SELECT name FROM head WHERE age > 56", "SELECT name FROM head WHERE age > 56"),
        ("To select the heads, here's the query:\nSELECT name FROM head", "SELECT name FROM head"),
        ("SELECT name FROM head WHERE born_state = 'Alabama'; it's the only one",
         "SELECT name FROM head WHERE born_state = 'Alabama'"),
        # writes parse too, and come first: extracted, so the validators reject them
        ("Delete nothing; SELECT 1", "Delete nothing"),
        ("Sure:\nUPDATE head SET age = 1 WHERE name = 'x'", "UPDATE head SET age = 1 WHERE name = 'x'"),
        ("VACUUM", "VACUUM"),  # sqlglot has no parse for it: the first candidate, as written
        # nothing parses: the first candidate as written, so the validator reports the parse error
        ("SELECT name FROM head WHERE name = 'Ali", "SELECT name FROM head WHERE name = 'Ali"),
        # spaces inside literals survive; a comment goes, without swallowing the next line
        ("SELECT name FROM head WHERE name = 'a  b'", "SELECT name FROM head WHERE name = 'a  b'"),
        ("SELECT name -- the name; not the age\nFROM head", "SELECT name FROM head"),
        ("SELECT [a;b] FROM t; x", "SELECT [a;b] FROM t"),
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


LLAMA3 = ("{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] "
          "+ '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
GEMMA = ("{% for m in messages %}{{ '<start_of_turn>' + m['role'] + '\\n' + m['content'] + '<end_of_turn>\\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")
PHI3 = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
MISTRAL = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
           "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}")
BARE = "{% for m in messages %}{{ m['content'] + '\\n' }}{% endfor %}"  # no end-of-turn token at all
SYSTEM_FIRST = "{{ raise_exception('the first message must be a system message') }}"


@pytest.mark.parametrize(
    "template, added, eos, config_eos, expected",
    [
        # the tiny model as built: ChatML, its eos ends turns
        pytest.param(None, [], "<|im_end|>", "<|im_end|>", ["<|im_end|>"], id="chatml"),
        pytest.param(None, [], "<|endoftext|>", "<|endoftext|>", ["<|endoftext|>", "<|im_end|>"], id="qwen-base"),
        pytest.param(LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|endoftext|>",
                     "<|endoftext|>", ["<|endoftext|>", "<|eot_id|>"], id="llama3"),
        pytest.param(GEMMA, ["<start_of_turn>", "<end_of_turn>"], "<|endoftext|>", "<|endoftext|>",
                     ["<|endoftext|>", "<end_of_turn>"], id="gemma"),
        pytest.param(PHI3, ["<|user|>", "<|assistant|>", "<|end|>"], "<|endoftext|>", "<|endoftext|>",
                     ["<|endoftext|>", "<|end|>"], id="phi3"),
        pytest.param(MISTRAL, [], "<|endoftext|>", "<|endoftext|>", ["<|endoftext|>"], id="turn-ends-with-eos"),
        # the generation config can name more than the tokenizer does
        pytest.param(BARE, [], "<|endoftext|>", ["<|endoftext|>", "<|im_start|>"], ["<|endoftext|>", "<|im_start|>"],
                     id="generation-config-list"),
        pytest.param(SYSTEM_FIRST, [], "<|endoftext|>", "<|im_end|>", ["<|endoftext|>", "<|im_end|>"],
                     id="template-raises"),
    ],
)
def test_stop_token_ids(tiny_model_dir, template, added, eos, config_eos, expected):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": added})
    tokenizer.eos_token = eos
    if template is not None:
        tokenizer.chat_template = template
    ids = tokenizer.convert_tokens_to_ids
    model.generation_config.eos_token_id = [ids(t) for t in config_eos] if isinstance(config_eos, list) \
        else ids(config_eos)
    assert stop_token_ids(model, tokenizer) == sorted(ids(t) for t in expected)


def test_generation_stops_at_the_templates_end_of_turn(tiny_model_dir):
    """A Qwen-style base (eos <|endoftext|>, turns end with <|im_end|>) made to say <|im_end|> as its
    second token: the completion is the first token alone, nothing of what would follow leaks."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.eos_token = "<|endoftext|>"
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    prompt = render_prompt(tokenizer, "CREATE TABLE head (name VARCHAR, age INTEGER)", "Who is older than 56?")
    batch = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad(), autocast_context("cpu"):
        reference = model.generate(**batch, max_new_tokens=2, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                   pad_token_id=tokenizer.pad_token_id)[0, -2:].tolist()
    first, second = reference
    assert len({first, second, end_of_turn, tokenizer.eos_token_id}) == 4, "pick another prompt: " + str(reference)
    with torch.no_grad():  # swap two output rows: the second step's argmax becomes <|im_end|>, the first's stays
        weight = model.lm_head.weight
        weight[[second, end_of_turn]] = weight[[end_of_turn, second]]
    [generation] = generate_batch(model, tokenizer, [prompt], max_new_tokens=10)
    assert generation.completion_tokens == 2
    assert generation.text == tokenizer.decode([first], skip_special_tokens=True)


@pytest.mark.parametrize("counts", [[1, 1, 1], [3, 1, 2], [4, 4, 4]])
def test_candidates_come_from_one_batch_with_the_greedy_answer_first(tiny_model_dir, counts, monkeypatch):
    import sqlfoundry.modeling.generation as generation

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [render_prompt(tokenizer, s, q) for s, q in [("CREATE TABLE a (x INTEGER)", "How many?"),
                                                           ("CREATE TABLE c (y VARCHAR)", "Which y?"),
                                                           ("CREATE TABLE b (z REAL)", "Largest z?")]]
    greedy = generate_batch(model, tokenizer, prompts, max_new_tokens=12)
    calls = []
    real = generation.generate_batch
    monkeypatch.setattr(generation, "generate_batch", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    sampling = generation.Sampling(temperature=1.5, top_p=1.0, seed=3)
    grouped = generation.generate_candidates(model, tokenizer, prompts, counts, sampling, max_new_tokens=12)
    again = generation.generate_candidates(model, tokenizer, prompts, counts, sampling, max_new_tokens=12)
    assert calls == [sum(counts)] * 2  # one batched generate per call
    assert [len(group) for group in grouped] == counts
    assert [group[0].text for group in grouped] == [g.text for g in greedy]  # greedy first, unchanged
    assert [[g.text for g in group] for group in grouped] == [[g.text for g in group] for group in again]  # seeded
    if max(counts) > 2:  # at temperature 1.5 a random model's samples differ from its greedy answer
        assert any(g.text != group[0].text for group in grouped for g in group[1:])


def test_many_candidates_are_generated_in_bounded_parts(tiny_model_dir, monkeypatch):
    """Rows x candidates beyond MAX_SEQUENCES are decoded in parts (bounded KV cache), each prompt's
    candidates together, and the greedy answers stay those of a plain greedy decode."""
    import sqlfoundry.modeling.generation as generation

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [render_prompt(tokenizer, f"CREATE TABLE t{i} (x INTEGER)", f"How many in t{i}?") for i in range(5)]
    monkeypatch.setattr(generation, "MAX_SEQUENCES", 6)
    calls = []
    real = generation.generate_batch
    monkeypatch.setattr(generation, "generate_batch", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    grouped = generation.generate_candidates(model, tokenizer, prompts, [3] * 5, generation.Sampling(1.0, 1.0, 0),
                                             max_new_tokens=6)
    assert calls == [6, 6, 3] and [len(group) for group in grouped] == [3] * 5
    greedy = real(model, tokenizer, prompts, max_new_tokens=6)
    assert [group[0].text for group in grouped] == [g.text for g in greedy]
