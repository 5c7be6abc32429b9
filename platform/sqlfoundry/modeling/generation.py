"""Batched SQL generation and robust extraction of one SQL statement from model output."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import torch

from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT
from sqlfoundry.data.formatting import render_prompt
from sqlfoundry.modeling.loading import bf16_supported

_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)(?:```|$)", re.IGNORECASE | re.DOTALL)
# Any statement start, read-only or not: extraction must not hide a write from the validators.
_STATEMENT_START = re.compile(
    r"\b(SELECT|WITH|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|PRAGMA|ATTACH|DETACH|REPLACE|VACUUM)\b",
    re.IGNORECASE,
)


def _cut_at_statement_end(sql: str) -> str:
    """Text up to the first semicolon outside quotes, or up to a blank line (trailing prose)."""
    quote = None
    for index, char in enumerate(sql):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        elif char == ";":
            return sql[:index]
        elif sql.startswith("\n\n", index):
            return sql[:index]
    return sql


def extract_sql(text: str) -> str:
    """One SQL statement from raw model output, or "" when there is none.

    Handles code fences, leading prose ("Here is the query: SELECT ..."), trailing explanations
    and trailing semicolons.
    """
    fenced = _FENCE.search(text)
    if fenced and _STATEMENT_START.search(fenced.group(1)):
        text = fenced.group(1)
    start = _STATEMENT_START.search(text)
    if not start:
        return ""
    sql = _cut_at_statement_end(text[start.start():])
    return " ".join(sql.split())


@dataclass
class Generation:
    sql: str
    text: str  # raw decoded completion
    prompt_tokens: int
    completion_tokens: int


def autocast_context(device: str):
    """bf16 autocast where the hardware runs bf16 natively; a no-op elsewhere."""
    if bf16_supported(device):
        return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def generate_batch(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int | list[int] = 128,
    adapter_names: list[str] | None = None,
) -> list[Generation]:
    """Greedy completions of one batch of rendered prompts, left-padded; stops at EOS.

    `max_new_tokens` may differ per row: the batch runs to the largest and each row is cut to its
    own limit (greedy decoding makes that identical to running the row alone). `adapter_names`
    picks a peft adapter per row ("__base__" for none), so one batch can mix adapters.
    """
    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    device = str(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
        with autocast_context(device):
            output = model.generate(
                **batch,
                **extra,
                max_new_tokens=max(limits),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    results = []
    for row, completion in enumerate(output[:, batch["input_ids"].shape[1]:]):
        completion = completion[:limits[row]]
        ended = (completion == tokenizer.eos_token_id).nonzero()
        length = int(ended[0]) + 1 if len(ended) else len(completion)
        text = tokenizer.decode(completion[:length], skip_special_tokens=True)
        results.append(Generation(
            sql=extract_sql(text),
            text=text,
            prompt_tokens=int(batch["attention_mask"][row].sum()),
            completion_tokens=length,
        ))
    return results


def generate_sql(
    model,
    tokenizer,
    schemas: list[str],
    questions: list[str],
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    progress: bool = False,
) -> list[Generation]:
    """Greedy SQL for each (schema, question), in batches of `batch_size`."""
    from tqdm.auto import tqdm

    if len(schemas) != len(questions):
        raise ValueError(f"got {len(schemas)} schemas but {len(questions)} questions")
    prompts = [render_prompt(tokenizer, schema, question, system_prompt) for schema, question in zip(schemas, questions)]
    results: list[Generation] = []
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="generating SQL", unit="batch", disable=not progress):
        results.extend(generate_batch(model, tokenizer, prompts[start:start + batch_size], max_new_tokens))
    return results
