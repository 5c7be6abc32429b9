"""The one prompt format, shared by training, evaluation and serving.

A row becomes chat messages: the schema in the system message, the question as the user turn,
the SQL as the assistant turn. Prompts are always rendered through the tokenizer's chat template,
so the model sees at serving time exactly what it saw in training.
"""

from __future__ import annotations

from typing import Any

from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT


def prompt_messages(schema: str, question: str, system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> list[dict]:
    return [
        {"role": "system", "content": system_prompt.replace("{schema}", schema.strip())},
        {"role": "user", "content": question.strip()},
    ]


def training_example(row: dict[str, str], system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> dict[str, Any]:
    """A conversational prompt-completion example: TRL computes the loss on the completion only."""
    return {
        "prompt": prompt_messages(row["context"], row["question"], system_prompt),
        "completion": [{"role": "assistant", "content": row["answer"].strip()}],
    }


def render_prompt(
    tokenizer, schema: str, question: str, system_prompt: str = DEFAULT_SYSTEM_PROMPT, chat_template: str | None = None
) -> str:
    """The text the model continues with its SQL answer (`chat_template` overrides the tokenizer's)."""
    return tokenizer.apply_chat_template(
        prompt_messages(schema, question, system_prompt), tokenize=False, add_generation_prompt=True,
        chat_template=chat_template,
    )
