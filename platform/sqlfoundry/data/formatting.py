"""The one prompt format, shared by training, evaluation and serving.

A row becomes chat messages: the schema in the system message, the question as the user turn,
the SQL as the assistant turn. Prompts are always rendered through the tokenizer's chat template,
so the model sees at serving time exactly what it saw in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT


def example_turns(examples: Sequence[dict[str, str]]) -> list[dict]:
    """Solved examples (rows with question, context, answer) as earlier chat turns: each a user turn
    with its own schema and question and an assistant turn with its SQL, so a model that has never
    seen the format learns it from the conversation."""
    turns = []
    for example in examples:
        turns.append({"role": "user", "content": f"Schema: {example['context'].strip()}\n"
                                                 f"Question: {example['question'].strip()}"})
        turns.append({"role": "assistant", "content": example["answer"].strip()})
    return turns


def prompt_messages(schema: str, question: str, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                    examples: Sequence[dict[str, str]] = (), repair: tuple[str, str] | None = None) -> list[dict]:
    """The prompt: schema in the system message, `examples` as earlier turns, the question last.
    `repair` = (failed SQL, its error) adds that answer and a request to correct it."""
    messages = [
        {"role": "system", "content": system_prompt.replace("{schema}", schema.strip())},
        *example_turns(examples),
        {"role": "user", "content": question.strip()},
    ]
    if repair is not None:
        failed_sql, error = repair
        messages += [{"role": "assistant", "content": failed_sql.strip()},
                     {"role": "user", "content": f"That query fails: {error.strip()}\n"
                                                 "Answer the question with one corrected SQLite query."}]
    return messages


def training_example(row: dict[str, str], system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                     examples: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """A conversational prompt-completion example: TRL computes the loss on the completion only."""
    return {
        "prompt": prompt_messages(row["context"], row["question"], system_prompt, examples),
        "completion": [{"role": "assistant", "content": row["answer"].strip()}],
    }


def render_prompt(
    tokenizer, schema: str, question: str, system_prompt: str = DEFAULT_SYSTEM_PROMPT, chat_template: str | None = None,
    examples: Sequence[dict[str, str]] = (), repair: tuple[str, str] | None = None,
) -> str:
    """The text the model continues with its SQL answer (`chat_template` overrides the tokenizer's)."""
    return tokenizer.apply_chat_template(
        prompt_messages(schema, question, system_prompt, examples, repair), tokenize=False,
        add_generation_prompt=True, chat_template=chat_template,
    )
