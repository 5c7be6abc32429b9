"""Batched SQL generation: greedy (or sampled) completions that stop at every end-of-turn token."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT
from sqlfoundry.data.formatting import render_prompt
from sqlfoundry.modeling.loading import bf16_supported
from sqlfoundry.sql.extract import extract_sql

# An assistant message no template rewrites; what a template writes after it ends the turn.
_PROBE = "SELECT 1"


def _end_of_turn_id(tokenizer, chat_template: str | None = None) -> int | None:
    """The first special token the chat template writes after an assistant message's text.

    Read off the template rather than matched against known names (<|im_end|>, <|eot_id|>,
    <end_of_turn>, <|end|>): a name list misses a custom template, and a name being in the
    vocabulary does not mean this template ends its turns with it.
    """
    messages = [{"role": "user", "content": "question"}, {"role": "assistant", "content": _PROBE}]
    try:
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=chat_template)
    except Exception:  # noqa: BLE001 - any template that cannot render this probe: eos ids still stop
        return None
    if _PROBE not in rendered:
        return None
    tail = rendered[rendered.rindex(_PROBE) + len(_PROBE):]
    special = {token_id for token_id, token in tokenizer.added_tokens_decoder.items() if token.special}
    return next((t for t in tokenizer(tail, add_special_tokens=False)["input_ids"] if t in special), None)


def stop_token_ids(model, tokenizer, chat_templates=(None,)) -> list[int]:
    """Every token that ends a completion: the model's generation config eos id(s), the tokenizer's
    eos and the end of turn of each chat template the prompts were rendered with (None: the
    tokenizer's own). Qwen-style bases end chat turns with <|im_end|> but name <|endoftext|> as eos;
    stopping at eos alone runs each row to max_new_tokens."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [*(configured if isinstance(configured, list) else [configured]), tokenizer.eos_token_id,
           *(_end_of_turn_id(tokenizer, template) for template in set(chat_templates))]
    return sorted({int(token_id) for token_id in ids if token_id is not None})


@dataclass
class Generation:
    sql: str
    text: str  # raw decoded completion
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None  # seeds torch's generator before the batch (same seed, same samples)


class _GreedyRows(LogitsProcessor):
    """Keeps only the top token of the given rows, so sampling picks it: those rows decode greedily
    in a sampled batch. Runs before the temperature and top-p warpers, which keep the top token."""

    def __init__(self, rows: list[int]):
        self.rows = rows

    def __call__(self, input_ids, scores):
        top = scores[self.rows].argmax(dim=-1, keepdim=True)
        kept = torch.full_like(scores[self.rows], float("-inf")).scatter(1, top, 0.0)
        scores[self.rows] = scores[self.rows] + kept
        return scores


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
    chat_templates=(None,),
    sampling: Sampling | None = None,
    greedy_rows: list[int] = (),
) -> list[Generation]:
    """Greedy completions of one batch of rendered prompts, left-padded; stops at `stop_token_ids`.

    `max_new_tokens` may differ per row: the batch runs to the largest and each row is cut to its
    own limit (greedy decoding makes that identical to running the row alone). `adapter_names`
    picks a peft adapter per row ("__base__" for none), so one batch can mix adapters;
    `chat_templates` are the templates the prompts were rendered with (None: the tokenizer's).
    With `sampling`, rows are sampled except `greedy_rows`, which still decode greedily.
    """
    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    device = str(next(model.parameters()).device)
    stops = stop_token_ids(model, tokenizer, chat_templates)
    was_training = model.training
    model.eval()
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
        if sampling is None:
            decoding = {"do_sample": False}
        else:
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            decoding = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p,
                        "top_k": 0, "logits_processor": LogitsProcessorList(
                            [_GreedyRows(list(greedy_rows))] if greedy_rows else [])}
        with autocast_context(device):
            output = model.generate(
                **batch,
                **extra,
                **decoding,
                max_new_tokens=max(limits),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stops,
            )
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    results = []
    stop_ids = torch.tensor(stops, device=output.device)
    for row, completion in enumerate(output[:, batch["input_ids"].shape[1]:]):
        completion = completion[:limits[row]]
        ended = torch.isin(completion, stop_ids).nonzero()
        stop = int(ended[0]) if len(ended) else None
        # Decoded without the stop token: an eos of the generation config need not be a special token.
        text = tokenizer.decode(completion[:stop], skip_special_tokens=True)
        results.append(Generation(
            sql=extract_sql(text),
            text=text,
            prompt_tokens=int(batch["attention_mask"][row].sum()),
            completion_tokens=stop + 1 if stop is not None else len(completion),
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


MAX_SEQUENCES = 32  # sequences decoded together at most when sampling candidates


def generate_candidates(
    model,
    tokenizer,
    prompts: list[str],
    counts: list[int],
    sampling: Sampling,
    max_new_tokens: int | list[int] = 128,
    adapter_names: list[str] | None = None,
    chat_templates=(None,),
) -> list[list[Generation]]:
    """`counts[i]` completions of prompt i in ONE batched generate: the first greedy, the others
    sampled. All counts 1 is exactly `generate_batch`'s greedy decode."""
    if all(count == 1 for count in counts):
        return [[g] for g in generate_batch(model, tokenizer, prompts, max_new_tokens, adapter_names, chat_templates)]
    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    if sum(counts) > MAX_SEQUENCES and len(prompts) > 1:
        # 16 rows x 8 candidates would be 128 sequences' KV caches at once: generate in parts of
        # at most MAX_SEQUENCES, never splitting one prompt's candidates.
        grouped, start = [], 0
        while start < len(prompts):
            end, total = start + 1, counts[start]
            while end < len(prompts) and total + counts[end] <= MAX_SEQUENCES:
                total, end = total + counts[end], end + 1
            grouped += generate_candidates(model, tokenizer, prompts[start:end], counts[start:end], sampling,
                                           limits[start:end], adapter_names[start:end] if adapter_names else None,
                                           chat_templates)
            start = end
        return grouped
    owner = [row for row, count in enumerate(counts) for _ in range(count)]
    first = {row: owner.index(row) for row in range(len(prompts))}
    flat = generate_batch(
        model, tokenizer, [prompts[row] for row in owner], [limits[row] for row in owner],
        [adapter_names[row] for row in owner] if adapter_names is not None else None, chat_templates,
        sampling=sampling, greedy_rows=sorted(first.values()),
    )
    grouped: list[list[Generation]] = [[] for _ in prompts]
    for row, generation in zip(owner, flat):
        grouped[row].append(generation)
    return grouped
