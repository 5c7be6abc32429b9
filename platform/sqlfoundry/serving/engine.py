"""One replica's model: the base model, its adapters and batched answering (sqlfoundry.answering:
candidates, retrieval, pruning, voting, repair). No Ray here, so the serving core is testable
anywhere; serving/app.py puts it behind Ray Serve."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlfoundry.answering.pipeline import Pipeline, Plan
from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT
from sqlfoundry.data.formatting import render_prompt
from sqlfoundry.modeling.builtin import cache_dir
from sqlfoundry.modeling.generation import Sampling, generate_candidates
from sqlfoundry.modeling.loading import load_model, load_tokenizer
from sqlfoundry.serving.adapters import BASE, AdapterError, AdapterPool
from sqlfoundry.serving.config import ServeConfig

log = logging.getLogger(__name__)


@dataclass
class SqlRequest:
    schema: str
    question: str
    max_new_tokens: int
    adapter: str | None = None  # name, name@version or name@alias
    candidates: int | None = None  # None: the deployment's strategy.candidates
    # False: candidates are checked but not executed here; the caller runs them where the data is
    # (/v1/query on a real database) and votes on their rows. SqlResult.candidates lists them.
    execute_candidates: bool = True


@dataclass
class SqlResult:
    sql: str = ""
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0  # of every candidate generated for the request
    adapter: str | None = None  # the name@version that answered
    error: str | None = None  # an AdapterError kind, or generation_failed
    detail: str = ""
    confidence: float | None = None  # the winning result's share of the candidates; None: not voted
    candidates_considered: int = 0
    repaired: bool = False
    pruned_tables: int = 0
    pruned_columns: int = 0
    few_shot: int = 0  # retrieved examples in the prompt
    candidates: list[dict] = field(default_factory=list)  # sql, greedy, problem, group, repair (greedy first)

    def to_dict(self) -> dict:
        return asdict(self)


class SqlEngine:
    def __init__(self, config: ServeConfig, device: str | None = None):
        self.config = config
        self.model = load_model(config.model, config.quantization, device)
        self.tokenizer = load_tokenizer(config.model)
        self.adapters = AdapterPool(
            registry=config.registry,
            base_model=config.model.name_or_path,
            max_loaded=config.max_loaded_adapters,
            refresh_s=config.alias_refresh_s,
            cache_dir=Path(config.adapter_cache_dir) if config.adapter_cache_dir else cache_dir() / "serve-adapters",
            negative_ttl_s=config.negative_cache_s,
        )
        # Retrieval examples and the synthesized-database cache live as long as the replica.
        self.pipeline = Pipeline.from_strategy(config.strategy)
        self.sampling = Sampling(config.strategy.temperature, config.strategy.top_p, config.strategy.seed)
        # perf_counter() at the end of the current batch's first forward pass (its prefill, which
        # yields every row's first token): the engine does not stream, so this is what the Serve
        # replica reports as time to first token. The hook sits on the base module, which peft
        # wraps but still calls on every step; it survives adapter loads.
        self.first_step_at: float | None = None
        self.model.register_forward_hook(self._first_step)

    def _first_step(self, *_) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()

    def generate(self, requests: list[SqlRequest]) -> list[SqlResult]:
        """Answer a batch. A row whose adapter cannot be served gets that error and the rest still
        run; if generating the batch fails, its parts are answered apart and only rows that fail
        alone get generation_failed."""
        self.first_step_at = None
        results = [SqlResult() for _ in requests]
        keys: list[str | None] = []
        for request, result in zip(requests, results):
            key = None
            if request.adapter:
                try:
                    key = self.adapters.resolve(request.adapter)  # raises only AdapterError
                except AdapterError as err:
                    result.error, result.detail = err.kind, err.detail
            keys.append(key)
        self.model, load_errors = self.adapters.ensure_loaded(self.model, {k for k in keys if k})
        rows, plans, prompts, names, templates, row_adapters = [], [], [], [], set(), []

        def render(position: int, plan: Plan, repair=None) -> str:
            adapter = row_adapters[position]
            return render_prompt(self.tokenizer, plan.schema, plan.question,
                                 adapter.system_prompt if adapter else DEFAULT_SYSTEM_PROMPT,
                                 adapter.chat_template if adapter else None, examples=plan.examples, repair=repair)

        for index, key in enumerate(keys):
            result = results[index]
            if key in load_errors:
                result.error, result.detail = load_errors[key].kind, load_errors[key].detail
            if result.error is not None:
                continue
            adapter = self.adapters.loaded.get(key) if key else None
            row_adapters.append(adapter)
            try:
                plan = self.pipeline.plan(requests[index].schema, requests[index].question, requests[index].candidates)
            except Exception as err:  # pruning or retrieval tripping on one request: that row only
                log.exception("planning the answer failed for one row")
                row_adapters.pop()
                result.error, result.detail = "generation_failed", f"cannot plan the answer ({type(err).__name__})"
                continue
            try:
                prompts.append(render(len(plans), plan))
            except Exception as err:  # an adapter's chat template that does not render
                row_adapters.pop()
                result.error = "adapter_invalid" if adapter else "generation_failed"
                result.detail = (f"{f'adapter {key}: ' if adapter else ''}cannot render the prompt with the "
                                 f"chat template: {type(err).__name__}: {str(err)[:300]}")
                continue
            plans.append(plan)
            rows.append(index)
            names.append(adapter.peft_name if adapter else BASE)
            templates.add(adapter.chat_template if adapter else None)
        if not rows:
            return results

        def generate(positions: list[int], batch_prompts: list[str], counts: list[int]):
            return generate_candidates(
                self.model, self.tokenizer, batch_prompts, counts, self.sampling,
                max_new_tokens=[requests[rows[p]].max_new_tokens for p in positions],
                adapter_names=[names[p] for p in positions] if self.adapters.loaded else None,
                chat_templates=templates,  # each template's end-of-turn token stops generation
            )

        counts = [self.pipeline.candidates(requests[index].candidates) for index in rows]

        def run(positions: list[int]) -> dict:
            """position -> choice for the rows at `positions` (indexes into `rows`), in one pipeline run."""
            choices = self.pipeline.run(
                [plans[p] for p in positions], [prompts[p] for p in positions], [counts[p] for p in positions],
                lambda sub, batch_prompts, sub_counts: generate([positions[i] for i in sub], batch_prompts, sub_counts),
                lambda sub, plan, repair=None: render(positions[sub], plan, repair),
                # No databases (an empty list): static checks only, the caller executes.
                [None if requests[rows[p]].execute_candidates else [] for p in positions])
            return dict(zip(positions, choices))

        def fail(positions: list[int], err: Exception) -> None:
            for position in positions:
                results[rows[position]].error = "generation_failed"
                # The message stays in the replica log: it may name files or memory of this host.
                results[rows[position]].detail = f"generation failed on the model replica ({type(err).__name__})"

        everything = list(range(len(rows)))
        try:
            choices = run(everything)
        except Exception:
            log.exception("generation failed for a batch of %d rows; answering its parts apart", len(rows))
            choices, failed = {}, []

            def answer_apart(positions: list[int]) -> None:
                """Each adapter's rows, then each row of a part that still fails: only what breaks
                generation on its own fails (one adapter peft cannot mix, one prompt too long)."""
                try:
                    choices.update(run(positions))
                except Exception as apart_err:
                    if len(positions) > 1:
                        for position in positions:
                            answer_apart([position])
                        return
                    log.warning("generation failed for row %d alone: %s: %s", rows[positions[0]],
                                type(apart_err).__name__, str(apart_err)[:200])
                    fail(positions, apart_err)
                    failed.append(positions[0])

            groups: dict[str, list[int]] = {}
            for position in everything:
                groups.setdefault(names[position], []).append(position)
            for group in groups.values() if len(groups) > 1 else [[p] for p in everything]:
                answer_apart(group)
            if choices:  # others ran: an adapter none of whose rows ran would break every later batch
                for key in {keys[rows[p]] for p in failed} - {keys[rows[p]] for p in choices} - {None}:
                    self.model = self.adapters.evict(self.model, key)
        for position, choice in choices.items():
            index, plan = rows[position], plans[position]
            result, generation = results[index], choice.generation
            result.sql, result.text = generation.sql, generation.text
            result.prompt_tokens, result.completion_tokens = generation.prompt_tokens, choice.completion_tokens
            result.adapter = keys[index]
            result.confidence, result.repaired = choice.confidence, choice.repaired
            result.candidates_considered = len(choice.candidates)
            result.pruned_tables, result.pruned_columns = plan.pruned_tables, plan.pruned_columns
            result.few_shot = len(plan.examples)
            result.candidates = [asdict(candidate) for candidate in choice.candidates]
        return results
