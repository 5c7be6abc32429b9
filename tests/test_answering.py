"""The answering pipeline stage by stage: identifier words, schema pruning, few-shot retrieval, voting
on real synthesized sqlite databases, repair, the strategy config, and the prompt with examples
(the same tokens in training and serving)."""

import pytest

from sqlfoundry.answering.execution import DatabaseCache, QueryFailed, sqlite_execute
from sqlfoundry.answering.pipeline import Pipeline, Plan
from sqlfoundry.answering.prune import prune_schema
from sqlfoundry.answering.retrieve import ExampleIndex
from sqlfoundry.answering.vote import vote
from sqlfoundry.answering.words import identifier_words, text_words
from sqlfoundry.config.loader import ConfigError, parse_config
from sqlfoundry.config.schema import StrategyConfig
from sqlfoundry.modeling.generation import Generation
from sqlfoundry.serving.config import ServeConfigError, parse_serve_config
from sqlfoundry.sql.schema import parse_schema

WIDE = (
    "CREATE TABLE department (department_id INTEGER, name TEXT, creation TEXT, ranking INTEGER, "
    "budget_in_billions REAL, num_employees REAL, PRIMARY KEY (department_id)); "
    "CREATE TABLE head (head_id INTEGER, name TEXT, born_state TEXT, age REAL, PRIMARY KEY (head_id)); "
    "CREATE TABLE management (department_id INTEGER, head_id INTEGER, temporary_acting TEXT, "
    "FOREIGN KEY (department_id) REFERENCES department (department_id), "
    "FOREIGN KEY (head_id) REFERENCES head (head_id)); "
    "CREATE TABLE weather (station TEXT, rainfall REAL, wind_speed REAL)"
)
GAME = ("CREATE TABLE game (HomeTeam TEXT, AwayTeam TEXT, crowdSize INTEGER, venue TEXT, game_date TEXT, "
        "homeScore INTEGER, awayScore INTEGER, referee TEXT)")


@pytest.mark.parametrize("name, words", [
    ("home_team_goals", ["home", "team", "goal"]),
    ("HomeTeamGoals", ["home", "team", "goal"]),
    ("homeTeamGoals", ["home", "team", "goal"]),
    ("HTMLParser2", ["html", "parser", "2"]),
    ("cities", ["city"]),
    ("founded", ["found"]),
    ("class", ["class"]),
])
def test_identifier_words(name, words):
    assert identifier_words(name) == words


def test_question_words_leave_out_common_words():
    assert text_words("How many players were founded in 1995?") == ["player", "found", "1995"]


# -- pruning --------------------------------------------------------------------------------------
@pytest.mark.parametrize("schema, question, min_columns, kept", [
    # the join table stays (its department_id meets "departments") with both join keys; the primary
    # keys of kept tables stay, and columns two kept tables share by name (name: a possible join);
    # the unrelated table and columns go
    (WIDE, "List the budget of departments whose head was born in Alabama", 8,
     {"department": ["department_id", "name", "budget_in_billions"], "head": ["head_id", "name", "born_state"],
      "management": ["department_id", "head_id"]}),
    # a table the question names is kept whole when none of its columns is mentioned
    (WIDE, "How many rows does weather have?", 8,
     {"weather": ["station", "rainfall", "wind_speed"]}),
    # camel-case identifiers are split; a shared name is no join column within one table
    (GAME, "What was the crowd size at the venue where the home team scored?", 4,
     {"game": ["HomeTeam", "AwayTeam", "crowdSize", "venue", "homeScore"]}),
    # a quoted word in the question meets a column's words like any other word
    (WIDE, "Which station had rainfall above 'wind' levels?", 8,
     {"weather": ["station", "rainfall", "wind_speed"]}),
    # whole names match as words only: `age` is not in "average", so head (and its key) goes
    (WIDE, "What is the average budget of departments?", 8,
     {"department": ["department_id", "budget_in_billions"], "management": ["department_id"]}),
    # at or below the threshold: nothing is pruned
    (WIDE, "List the budget of departments", 20, None),
    # nothing matches: nothing is pruned rather than an empty schema
    (WIDE, "zzz qqq", 8, None),
], ids=["join-keys", "named-table", "camel-case", "quoted-word", "word-not-substring", "below-threshold",
        "no-match"])
def test_prune_keeps_named_tables_and_join_keys(schema, question, min_columns, kept):
    tables = parse_schema(schema)
    pruned = prune_schema(tables, question, min_columns)
    if kept is None:
        assert pruned.tables == tables and not pruned.changed
        return
    assert {t.name: list(t.column_names) for t in pruned.tables} == kept
    every = {f"{t.name}.{c}" for t in tables for c in t.column_names}
    shown = {f"{t.name}.{c}" for t in pruned.tables for c in t.column_names}
    dropped_tables = {t.name for t in tables} - set(kept)
    assert set(pruned.dropped_tables) == dropped_tables
    assert set(pruned.dropped_columns) == {c for c in every - shown if c.split(".")[0] not in dropped_tables}


def test_pruned_foreign_keys_point_only_at_kept_tables():
    pruned = prune_schema(parse_schema(WIDE), "budget of departments managed by heads born in Ohio", 8)
    management = next(t for t in pruned.tables if t.name == "management")
    assert {fk.table for fk in management.foreign_keys} == {"department", "head"}


def test_pipeline_reports_pruning_and_renders_the_pruned_schema():
    pipeline = Pipeline(StrategyConfig(prune=True, prune_min_columns=8))
    plan = pipeline.plan(WIDE, "List the budget of departments whose head was born in Alabama")
    assert (plan.pruned_tables, plan.pruned_columns) == (1, 5)
    assert "weather" not in plan.schema and "budget_in_billions" in plan.schema
    assert len(plan.tables) == 4  # candidates are still checked against the whole schema


# -- retrieval ------------------------------------------------------------------------------------
POOL = [
    {"question": "How many heads of the departments are older than 56?", "context": "CREATE TABLE head (age INTEGER)",
     "answer": "SELECT COUNT(*) FROM head WHERE age > 56"},
    {"question": "how many heads of the departments are older than 56", "context": "CREATE TABLE head (age TEXT)",
     "answer": "SELECT COUNT(*) FROM head WHERE age > 56"},
    {"question": "How many heads are older than 60?", "context": "CREATE TABLE head (age INTEGER, name TEXT)",
     "answer": "SELECT COUNT(*) FROM head WHERE age > 60"},
    {"question": "What is the total budget of all departments?", "context": "CREATE TABLE department (budget REAL)",
     "answer": "SELECT SUM(budget) FROM department"},
    {"question": "Which venue had the largest crowd?", "context": GAME,
     "answer": "SELECT venue FROM game ORDER BY crowdSize DESC LIMIT 1"},
]


@pytest.mark.parametrize("question, schema, k, expected", [
    # the row itself (and a copy differing in case and punctuation) is never returned
    (POOL[0]["question"], POOL[0]["context"], 2, [POOL[2]["answer"], POOL[3]["answer"]]),
    (POOL[0]["question"].upper(), POOL[0]["context"], 1, [POOL[2]["answer"]]),
    ("Which venue drew the largest crowd size?", GAME, 1, [POOL[4]["answer"]]),
    ("total budget of departments", "CREATE TABLE department (budget REAL)", 3,
     [POOL[3]["answer"], POOL[0]["answer"], POOL[1]["answer"]]),  # best first
    ("zzz", "CREATE TABLE q (z TEXT)", 2, []),  # nothing in common: no examples
    (POOL[2]["question"], POOL[2]["context"], 0, []),
])
def test_retrieval_never_returns_the_query_row(question, schema, k, expected):
    found = ExampleIndex(POOL).search(question, schema, k)
    assert [row["answer"] for row in found] == expected
    assert all(row["question"].lower().rstrip("?") != question.lower().rstrip("?") for row in found)


def test_empty_index_returns_nothing():
    assert ExampleIndex([]).search("how many heads?", "CREATE TABLE head (age INTEGER)", 2) == []


# -- voting ---------------------------------------------------------------------------------------
A, B, C = [[(1,), (2,)]], [[(3,)]], [[(4,)]]


@pytest.mark.parametrize("results, winner, confidence, groups", [
    ([A, A, B], 0, 2 / 3, [[0, 1], [2]]),
    ([B, A, A], 1, 2 / 3, [[1, 2], [0]]),  # the majority beats the greedy candidate
    ([A, B], 0, 1 / 2, [[0], [1]]),  # a tie goes to the greedy one
    ([B, A, A, B], 0, 1 / 2, [[0, 3], [1, 2]]),  # a tie of groups goes to the greedy one's group
    ([None, B, C], 1, 1 / 3, [[1], [2]]),  # failed greedy: the first surviving one on a tie
    ([None, B, B, C], 1, 2 / 4, [[1, 2], [3]]),
    ([[[(2,), (1,)]], A], 0, 1.0, [[0, 1]]),  # row order does not split a group
    ([None, None], None, 0.0, []),
])
def test_vote_picks_the_majority_and_breaks_ties_to_greedy(results, winner, confidence, groups):
    result = vote(results)
    assert (result.winner, result.groups) == (winner, groups)
    assert result.confidence == pytest.approx(confidence)


def _gen(sql: str) -> Generation:
    return Generation(sql=sql, text=sql, prompt_tokens=10, completion_tokens=5)


HEAD = "CREATE TABLE head (name VARCHAR, age INTEGER, born_state VARCHAR)"


@pytest.mark.parametrize("sqls, chosen, confidence, problems", [
    # two spellings of one answer outvote the greedy one on real synthesized databases
    (["SELECT name FROM head", "SELECT name FROM head WHERE age > 56", "SELECT name FROM head WHERE 56 < age"],
     "SELECT name FROM head WHERE age > 56", 2 / 3, [None, None, None]),
    (["SELECT COUNT(*) FROM head", "SELECT MAX(age) FROM head", "SELECT MIN(age) FROM head"],
     "SELECT COUNT(*) FROM head", 1 / 3, [None, None, None]),  # no majority: greedy
    # a candidate naming an unknown column or writing fails its checks and gets no vote
    (["SELECT nam FROM head", "SELECT name FROM head WHERE born_state = 'Ohio'", "DELETE FROM head"],
     "SELECT name FROM head WHERE born_state = 'Ohio'", 1 / 3, ["unknown_column", None, "not_read_only"]),
    (["SELECT nam FROM head", ""], "SELECT nam FROM head", 0.0, ["unknown_column", "no_sql"]),
])
def test_decide_executes_candidates_and_votes(sqls, chosen, confidence, problems):
    pipeline = Pipeline(StrategyConfig(candidates=len(sqls)))
    plan = pipeline.plan(HEAD, "Which heads are older than 56?", len(sqls))
    choice = pipeline.decide(plan, [_gen(s) for s in sqls])
    assert choice.generation.sql == chosen
    assert choice.confidence == pytest.approx(confidence)
    assert [c.problem.split(":")[0] if c.problem else None for c in choice.candidates] == problems
    assert choice.completion_tokens == 5 * len(sqls)


def test_one_candidate_and_nothing_on_is_the_greedy_answer_unexecuted():
    pipeline = Pipeline(StrategyConfig())
    plan = pipeline.plan("not a schema at all", "anything?")
    choice = pipeline.decide(plan, [_gen("SELECT nope FROM nowhere")])
    assert (plan.tables, choice.generation.sql, choice.confidence) == (None, "SELECT nope FROM nowhere", None)


def test_a_real_database_replaces_the_synthesized_ones(tmp_path):
    import sqlite3

    from sqlfoundry.sql.execute import open_read_only

    path = tmp_path / "heads.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE head (name VARCHAR, age INTEGER, born_state VARCHAR)")
        conn.executemany("INSERT INTO head VALUES (?, ?, ?)", [("ann", 70, "Ohio"), ("bob", 40, "Ohio")])
    real = [sqlite_execute(open_read_only(str(path)), timeout_s=1.0)]
    pipeline = Pipeline(StrategyConfig(candidates=3))
    plan = pipeline.plan(HEAD, "Who is older than 56?", 3)
    # on this data "age > 56" and "age >= 70" agree, and outvote the greedy answer
    sqls = ["SELECT name FROM head", "SELECT name FROM head WHERE age > 56", "SELECT name FROM head WHERE age >= 70"]
    choice = pipeline.decide(plan, [_gen(s) for s in sqls], real)
    assert choice.generation.sql == sqls[1] and choice.confidence == pytest.approx(2 / 3)
    with pytest.raises(QueryFailed, match="runtime_error"):
        real[0]("SELECT missing FROM head")


def test_database_cache_is_bounded_and_reused():
    cache = DatabaseCache(size=2)
    tables = parse_schema(HEAD)
    first = cache.databases(tables, ["SELECT name FROM head WHERE age > 56"], 2, 0)
    assert cache.databases(tables, ["SELECT name FROM head WHERE age > 56"], 2, 0) is first
    cache.databases(tables, ["SELECT name FROM head WHERE age > 1"], 2, 0)
    cache.databases(tables, ["SELECT name FROM head WHERE age > 2"], 2, 0)
    assert len(cache) == 2 and (cache.hits, cache.misses) == (1, 3)
    with pytest.raises(Exception, match="closed"):
        first[0].execute("SELECT 1")  # the least recently used set was closed when dropped


# -- repair ---------------------------------------------------------------------------------------
class ScriptedModel:
    """Stands in for the model only (the pipeline under test is real): returns the given SQL per
    round and records what it was asked."""

    def __init__(self, rounds):
        self.rounds, self.calls = list(rounds), []

    def generate(self, rows, prompts, counts):
        self.calls.append((list(rows), list(prompts), list(counts)))
        answers = self.rounds.pop(0)
        return [[_gen(sql) for sql in answers[row]] for row in rows]


@pytest.mark.parametrize("first, repaired_sql, expect_repair_call, answer, repaired", [
    # every candidate fails: the repair round runs and its valid answer is used
    (["SELECT nam FROM head", "SELECT agee FROM head"], "SELECT name FROM head", True, "SELECT name FROM head", True),
    # a repair that fails too leaves the greedy answer
    (["SELECT nam FROM head", "SELECT x FROM head"], "SELECT still_bad FROM head", True, "SELECT nam FROM head", False),
    # one candidate survives: no repair round at all
    (["SELECT nam FROM head", "SELECT name FROM head"], "unused", False, "SELECT name FROM head", False),
])
def test_repair_is_used_only_when_all_candidates_fail(first, repaired_sql, expect_repair_call, answer, repaired):
    pipeline = Pipeline(StrategyConfig(candidates=len(first), repair=True))
    model = ScriptedModel([{0: first}, {0: [repaired_sql]}])
    plans = [pipeline.plan(HEAD, "List the names of the heads", len(first))]
    seen = []

    def render(row, plan, repair=None):
        seen.append(repair)
        return f"prompt {row} {repair}"

    [choice] = pipeline.run(plans, ["prompt 0"], [len(first)], model.generate, render)
    assert (choice.generation.sql, choice.repaired) == (answer, repaired)
    assert len(model.calls) == (2 if expect_repair_call else 1)
    if expect_repair_call:
        failed_sql, error = seen[0]
        assert failed_sql == first[0] and "unknown_column" in error  # the failing SQL and its error go back
        assert model.calls[1][2] == [1] and choice.candidates[-1].repair
        assert choice.confidence == (pytest.approx(1 / 3) if repaired else 0.0)


def test_repair_round_failure_keeps_the_first_answers():
    pipeline = Pipeline(StrategyConfig(repair=True))
    calls = []

    def generate(rows, prompts, counts):
        calls.append(rows)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return [[_gen("SELECT nam FROM head")] for _ in rows]

    plans = [pipeline.plan(HEAD, "names?"), pipeline.plan(HEAD, "ages?")]
    choices = pipeline.run(plans, ["a", "b"], [1, 1], generate, lambda row, plan, repair=None: "p")
    assert [c.generation.sql for c in choices] == ["SELECT nam FROM head"] * 2 and len(calls) == 2


# -- strategy config ------------------------------------------------------------------------------
@pytest.mark.parametrize("section, key, message", [
    ({"candidates": 0}, "strategy.candidates", "greater than or equal to 1"),
    ({"candidatez": 2}, "strategy.candidatez", "unknown key"),
    ({"top_p": 1.5}, "strategy.top_p", "less than or equal to 1"),
    ({"candidates": 12, "max_candidates": 8}, "strategy", "candidates (12) must not exceed max_candidates (8)"),
])
def test_strategy_config_errors_name_the_key(section, key, message):
    for parse, error in ((lambda raw: parse_config(raw), ConfigError), (parse_serve_config, ServeConfigError)):
        with pytest.raises(error) as caught:
            parse({"strategy": section})
        assert f"{key}: " in str(caught.value) and message in str(caught.value)


def test_strategy_defaults_are_everything_off():
    strategy = parse_config({}).strategy
    assert (strategy.candidates, strategy.few_shot_k, strategy.prune, strategy.repair) == (1, 0, False, False)
    assert parse_serve_config({"strategy": {"candidates": 4}}).strategy.candidates == 4


# -- prompts with examples: training and serving see the same tokens -------------------------------
@pytest.mark.parametrize("k", [0, 1, 2])
def test_prompts_with_k_examples_match_between_training_and_serving(tiny_model_dir, k):
    from transformers import AutoTokenizer
    from trl.data_utils import _tokenize  # what SFTTrainer tokenizes a conversational prompt with

    from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT
    from sqlfoundry.data.formatting import render_prompt, training_example

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    row = {"question": "How many heads are older than 56?", "context": HEAD,
           "answer": "SELECT COUNT(*) FROM head WHERE age > 56"}
    examples = ExampleIndex(POOL).search(row["question"], row["context"], k)
    assert len(examples) == k
    trained = training_example(row, DEFAULT_SYSTEM_PROMPT, examples)
    training_ids = _tokenize(tokenizer, trained["prompt"], add_generation_prompt=True)["input_ids"]
    whole = _tokenize(tokenizer, trained["prompt"] + trained["completion"])["input_ids"]
    plan = Plan(row["question"], row["context"], examples=examples)
    served = render_prompt(tokenizer, plan.schema, plan.question, DEFAULT_SYSTEM_PROMPT, examples=plan.examples)
    assert training_ids == tokenizer(served, add_special_tokens=False)["input_ids"]
    assert whole[:len(training_ids)] == training_ids  # the completion follows the served prompt
    for example in examples:
        assert example["answer"] in served and example["question"] in served


# -- the CLI: generate and eval answer through the pipeline ----------------------------------------
def _rows_file(path, rows):
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_eval_writes_candidates_and_votes_and_greedy_is_unchanged(tiny_model_dir, tmp_path):
    import json

    from sqlfoundry.cli import main

    data = _rows_file(tmp_path / "heldout.jsonl", POOL[:3])
    examples = _rows_file(tmp_path / "examples.jsonl", POOL)
    common = ["eval", "--data", str(data), "--model", str(tiny_model_dir), "--max-new-tokens", "8",
              "--view", "original"]
    assert main([*common, "--out", str(tmp_path / "greedy")]) == 0
    assert main([*common, "--out", str(tmp_path / "voted"), "--candidates", "3", "--few-shot-k", "2",
                 "--examples", str(examples), "--prune", "--prune-min-columns", "1", "--repair"]) == 0

    def records(run):
        return [json.loads(line) for line in (tmp_path / run / "predictions.jsonl").read_text().splitlines()]

    greedy, voted = records("greedy"), records("voted")
    assert all(r["confidence"] is None and len(r["candidates"]) == 1 and r["few_shot"] == 0 for r in greedy)
    # strategy off: the predictions of a plain greedy decode (the path eval took before the pipeline)
    from sqlfoundry.modeling.generation import generate_sql
    from sqlfoundry.modeling.loading import load_for_inference

    model, tokenizer, system_prompt = load_for_inference(None, str(tiny_model_dir))
    before = generate_sql(model, tokenizer, [r["context"] for r in POOL[:3]], [r["question"] for r in POOL[:3]],
                          system_prompt=system_prompt, max_new_tokens=8)
    assert [r["prediction"] for r in greedy] == [g.sql for g in before]
    for record in voted:
        assert len(record["candidates"]) in (3, 4)  # 4: the repair round ran
        assert record["candidates"][0]["greedy"] and record["few_shot"] == 2
        assert record["confidence"] is not None
        assert record["repaired"] == any(c["repair"] and c["group"] == 0 for c in record["candidates"])
    summary = json.loads((tmp_path / "voted" / "summary.json").read_text())
    assert summary["settings"]["strategy"]["candidates"] == 3


@pytest.mark.parametrize("flags, message", [
    (["--candidates", "0"], "--candidates: Input should be greater than or equal to 1"),
    (["--top-p", "2"], "--top-p: Input should be less than or equal to 1"),
    (["--few-shot-k", "2"], "few_shot_k > 0 needs examples, and no adapter is used: set strategy.examples"),
])
def test_strategy_flag_errors_name_the_flag(tiny_model_dir, tmp_path, capsys, flags, message):
    from sqlfoundry.cli import main

    code = main(["generate", "--base", str(tiny_model_dir), "--schema", HEAD, "--question", "q", *flags])
    assert code == 2 and message in capsys.readouterr().err


def test_generate_json_reports_how_the_answer_was_chosen(tiny_model_dir, capsys):
    import json

    from sqlfoundry.cli import main

    main(["generate", "--base", str(tiny_model_dir), "--schema", WIDE, "--question", "budget of departments?",
          "--max-new-tokens", "6", "--candidates", "2", "--prune", "--prune-min-columns", "4", "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["candidates"]) == 2 and answer["pruned_tables"] >= 1 and "confidence" in answer
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "--few-shot-k" in capsys.readouterr().out
