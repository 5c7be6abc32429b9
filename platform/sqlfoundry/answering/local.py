"""Answering with one in-process model and no adapter routing: `sqlfoundry generate` and `eval`."""

from __future__ import annotations

from sqlfoundry.answering.execution import Execute
from sqlfoundry.answering.pipeline import Choice, Pipeline, Plan
from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT
from sqlfoundry.data.formatting import render_prompt
from sqlfoundry.modeling.generation import Sampling, generate_candidates


def answer_questions(model, tokenizer, pipeline: Pipeline, schemas: list[str], questions: list[str],
                     system_prompt: str = DEFAULT_SYSTEM_PROMPT, max_new_tokens: int = 128,
                     executes: list[list[Execute] | None] | None = None) -> list[tuple[Plan, Choice]]:
    """One batch: every row's candidates in one generate, then checks, votes and repairs.
    `executes` (per row): where candidates run, e.g. a real database; default synthesized ones."""
    if len(schemas) != len(questions):
        raise ValueError(f"got {len(schemas)} schemas but {len(questions)} questions")
    strategy = pipeline.strategy
    sampling = Sampling(strategy.temperature, strategy.top_p, strategy.seed)
    plans = [pipeline.plan(schema, question) for schema, question in zip(schemas, questions)]

    def render(_row: int, plan: Plan, repair=None) -> str:
        return render_prompt(tokenizer, plan.schema, plan.question, system_prompt, examples=plan.examples,
                             repair=repair)

    def generate(_rows, prompts, counts):
        return generate_candidates(model, tokenizer, prompts, counts, sampling, max_new_tokens)

    prompts = [render(row, plan) for row, plan in enumerate(plans)]
    counts = [pipeline.candidates()] * len(plans)
    return list(zip(plans, pipeline.run(plans, prompts, counts, generate, render, executes)))
