"""The answering pipeline: plan each question (prune, retrieve), generate every row's candidates in
one batched generate, check and execute them, vote, and repair the rows where nothing survived.

It knows nothing of models or adapters: the caller renders prompts (`Render`) and generates
(`Generate`), so the CLI, the evaluator and a serving replica with mixed adapters share it. With
the default strategy (one candidate, no pruning, retrieval or repair) it returns the greedy
completion untouched, exactly as a plain greedy decode.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sqlfoundry.answering.execution import DatabaseCache, Execute, QueryFailed, sqlite_execute
from sqlfoundry.answering.prune import prune_schema
from sqlfoundry.answering.retrieve import ExampleIndex, load_index
from sqlfoundry.answering.vote import vote
from sqlfoundry.config.loader import ConfigError
from sqlfoundry.config.schema import StrategyConfig
from sqlfoundry.data.examples import EXAMPLES_FILE, examples_path
from sqlfoundry.modeling.generation import Generation
from sqlfoundry.modeling.loading import ADAPTER_META
from sqlfoundry.sql.schema import SchemaError, Table, parse_schema, render_schema
from sqlfoundry.sql.validate import check_query

log = logging.getLogger(__name__)


@dataclass
class Plan:
    question: str
    schema: str  # what the prompt shows: the request's text, or the pruned schema re-rendered
    tables: list[Table] | None = None  # the request's whole schema, parsed (None: not needed or no parse)
    examples: list[dict] = field(default_factory=list)
    pruned_tables: int = 0
    pruned_columns: int = 0


@dataclass
class Candidate:
    sql: str
    greedy: bool
    problem: str | None = None  # why it cannot be the answer (a check or a run failed)
    group: int | None = None  # index of its result group in the vote (0 = the winning one)
    repair: bool = False


@dataclass
class Choice:
    generation: Generation  # the chosen completion
    candidates: list[Candidate]
    confidence: float | None  # None: nothing was voted on (one candidate, nothing executed)
    repaired: bool = False
    completion_tokens: int = 0  # of every candidate generated for the row

    @property
    def survived(self) -> bool:
        return self.confidence is None or self.confidence > 0

    def record(self) -> dict:
        """What predictions.jsonl and the API report about how the answer was chosen."""
        return {"confidence": self.confidence, "repaired": self.repaired,
                "candidates": [asdict(c) for c in self.candidates]}


# generate(rows, prompts, counts): counts[i] completions of prompts[i] (the first greedy), for the
# plan rows `rows` (callers pick each row's adapter by it).
Generate = Callable[[list[int], list[str], list[int]], list[list[Generation]]]
# render(row, plan, repair): the prompt of a plan row; repair = (failed SQL, its error) or None.
Render = Callable[[int, Plan, "tuple[str, str] | None"], str]


class Pipeline:
    def __init__(self, strategy: StrategyConfig, index: ExampleIndex | None = None, cache: DatabaseCache | None = None):
        self.strategy = strategy
        self.index = index
        self.cache = cache if cache is not None else DatabaseCache(strategy.cache_size)

    @classmethod
    def from_strategy(cls, strategy: StrategyConfig, adapter_dir: str | Path | None = None) -> "Pipeline":
        """Retrieval draws from strategy.examples, else from the examples.jsonl of `adapter_dir`.
        A strategy that does not set few_shot_k takes the adapter's (recorded by training), so its
        prompts show as many examples as it was trained with."""
        meta = Path(adapter_dir) / ADAPTER_META if adapter_dir is not None else None
        if "few_shot_k" not in strategy.model_fields_set and meta is not None and meta.is_file():
            try:  # adapter folders come from storage: their k is checked like a config's
                recorded = json.loads(meta.read_text())
                trained_k = recorded.get("few_shot_k", 0) if isinstance(recorded, dict) else None
                strategy = StrategyConfig.model_validate({**strategy.model_dump(), "few_shot_k": trained_k})
            except (ValueError, ValidationError) as err:  # JSONDecodeError is a ValueError
                detail = err.errors()[0]["msg"] if isinstance(err, ValidationError) else "not JSON"
                raise ConfigError(f"{meta}: few_shot_k: {detail}") from None
        if not strategy.few_shot_k:
            return cls(strategy)
        source = strategy.examples or examples_path(adapter_dir)
        if source is None:
            where = f"adapter {adapter_dir} carries no {EXAMPLES_FILE}" if adapter_dir else "no adapter is used"
            raise ConfigError(f"strategy.few_shot_k > 0 needs examples, and {where}: set strategy.examples "
                             "(--examples FILE) to a JSON/JSONL file of question/context/answer rows")
        return cls(strategy, load_index(source))

    def candidates(self, requested: int | None = None) -> int:
        return requested or self.strategy.candidates

    def _executes_candidates(self, counts: int) -> bool:
        return counts > 1 or self.strategy.repair

    def plan(self, schema: str, question: str, candidates: int | None = None) -> Plan:
        strategy = self.strategy
        plan = Plan(question, schema)
        if strategy.prune or self._executes_candidates(self.candidates(candidates)):
            try:
                plan.tables = parse_schema(schema)
            except SchemaError:  # nothing to prune or execute on: the greedy answer, as without a strategy
                plan.tables = None
        if strategy.prune and plan.tables:
            pruned = prune_schema(plan.tables, question, strategy.prune_min_columns)
            if pruned.changed:
                plan.schema = render_schema(pruned.tables)
                plan.pruned_tables, plan.pruned_columns = len(pruned.dropped_tables), len(pruned.dropped_columns)
        if self.index is not None and strategy.few_shot_k:
            plan.examples = self.index.search(question, plan.schema, strategy.few_shot_k)
        return plan

    def _problem(self, sql: str, tables: list[Table], executes: list[Execute]) -> tuple[str | None, list | None]:
        checked = check_query(sql, tables)
        if not checked.ok:
            return f"{checked.reason}: {checked.detail}", None
        try:
            return None, [execute(sql) for execute in executes]
        except QueryFailed as err:
            return str(err), None

    def decide(self, plan: Plan, generations: list[Generation], executes: list[Execute] | None = None) -> Choice:
        """Check, execute and vote on one row's candidates (generations[0] is the greedy one)."""
        tokens = sum(g.completion_tokens for g in generations)
        candidates = [Candidate(g.sql, greedy=i == 0) for i, g in enumerate(generations)]
        if plan.tables is None or not self._executes_candidates(len(generations)) and executes is None:
            return Choice(generations[0], candidates, None, completion_tokens=tokens)
        if executes is None:
            passing = [c.sql for c in candidates if check_query(c.sql, plan.tables).ok]
            conns = self.cache.databases(plan.tables, sorted(set(passing)), self.strategy.databases,
                                         self.strategy.seed)
            executes = [sqlite_execute(conn, self.strategy.timeout_s) for conn in conns]
        seen: dict[str, tuple[str | None, list | None]] = {}
        for candidate in candidates:
            if candidate.sql not in seen:
                seen[candidate.sql] = self._problem(candidate.sql, plan.tables, executes)
            candidate.problem = seen[candidate.sql][0]
        result = vote([seen[c.sql][1] for c in candidates])
        for number, group in enumerate(result.groups):
            for index in group:
                candidates[index].group = number
        chosen = generations[result.winner] if result.winner is not None else generations[0]
        return Choice(chosen, candidates, result.confidence, completion_tokens=tokens)

    def _decide_or_greedy(self, plan: Plan, generations: list[Generation], executes) -> Choice:
        try:
            return self.decide(plan, generations, executes)
        except Exception:  # one row's checks or executions must not fail its batch: it keeps the greedy answer
            log.exception("choosing among %d candidates failed; answering with the greedy one", len(generations))
            return Choice(generations[0], [Candidate(g.sql, i == 0) for i, g in enumerate(generations)], None,
                          completion_tokens=sum(g.completion_tokens for g in generations))

    def run(self, plans: list[Plan], prompts: list[str], counts: list[int], generate: Generate, render: Render,
            executes: list[list[Execute] | None] | None = None) -> list[Choice]:
        """Answer every plan row; a generate failure in the first round is raised (the caller fails
        the batch), one in the repair round leaves those rows with their first answers."""
        executes = executes or [None] * len(plans)
        generated = generate(list(range(len(plans))), prompts, counts)
        choices = [self._decide_or_greedy(plan, gens, ex) for plan, gens, ex in zip(plans, generated, executes)]
        if self.strategy.repair:
            self._repair(plans, choices, generate, render, executes)
        return choices

    def _repair(self, plans, choices, generate: Generate, render: Render, executes) -> None:
        rows, prompts = [], []
        for row, choice in enumerate(choices):
            if choice.survived or plans[row].tables is None:
                continue
            failed = choice.candidates[0]
            try:
                prompts.append(render(row, plans[row], (failed.sql or choice.generation.text, failed.problem or "")))
            except Exception as err:  # a chat template that cannot render the repair turns: no repair
                log.warning("cannot render a repair prompt: %s", type(err).__name__)
                continue
            rows.append(row)
        if not rows:
            return
        try:
            repaired = generate(rows, prompts, [1] * len(rows))
        except Exception:
            log.exception("the repair round failed for %d rows; they keep their first answers", len(rows))
            return
        for row, [generation] in zip(rows, repaired):
            choice = choices[row]
            second = self._decide_or_greedy(plans[row], [generation], executes[row])
            candidate = Candidate(generation.sql, greedy=False, problem=second.candidates[0].problem, repair=True)
            choice.candidates.append(candidate)
            choice.completion_tokens += generation.completion_tokens
            if second.confidence:  # ran on every database (None: could not be checked)
                candidate.group = 0
                choice.generation, choice.repaired = generation, True
                choice.confidence = 1 / len(choice.candidates)
