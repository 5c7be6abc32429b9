"""One replica's model: the base model, its adapters and batched generation. No Ray here, so the
serving core is testable anywhere; serving/app.py puts it behind Ray Serve."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT
from sqlfoundry.data.formatting import render_prompt
from sqlfoundry.modeling.builtin import cache_dir
from sqlfoundry.modeling.generation import generate_batch
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


@dataclass
class SqlResult:
    sql: str = ""
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    adapter: str | None = None  # the name@version that answered
    error: str | None = None  # an AdapterError kind, or generation_failed
    detail: str = ""

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

    def generate(self, requests: list[SqlRequest]) -> list[SqlResult]:
        """Answer a batch. A row whose adapter cannot be served gets that error and the rest still
        run; if generating the batch itself fails, every row in it gets generation_failed."""
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
        rows, prompts, names, templates = [], [], [], set()
        for index, key in enumerate(keys):
            result = results[index]
            if key in load_errors:
                result.error, result.detail = load_errors[key].kind, load_errors[key].detail
            if result.error is not None:
                continue
            adapter = self.adapters.loaded.get(key) if key else None
            try:
                prompts.append(render_prompt(
                    self.tokenizer, requests[index].schema, requests[index].question,
                    adapter.system_prompt if adapter else DEFAULT_SYSTEM_PROMPT,
                    adapter.chat_template if adapter else None,
                ))
            except Exception as err:  # an adapter's chat template that does not render
                result.error = "adapter_invalid" if adapter else "generation_failed"
                result.detail = (f"{f'adapter {key}: ' if adapter else ''}cannot render the prompt with the "
                                 f"chat template: {type(err).__name__}: {str(err)[:300]}")
                continue
            rows.append(index)
            names.append(adapter.peft_name if adapter else BASE)
            templates.add(adapter.chat_template if adapter else None)
        if not rows:
            return results
        try:
            generations = generate_batch(
                self.model, self.tokenizer, prompts,
                max_new_tokens=[requests[index].max_new_tokens for index in rows],
                adapter_names=names if self.adapters.loaded else None,
                chat_templates=templates,  # each template's end-of-turn token stops generation
            )
        except Exception as err:
            log.exception("generation failed for a batch of %d rows", len(rows))
            for index in rows:
                results[index].error = "generation_failed"
                # The message stays in the replica log: it may name files or memory of this host.
                results[index].detail = f"generation failed on the model replica ({type(err).__name__})"
            return results
        for index, generation in zip(rows, generations):
            result = results[index]
            result.sql, result.text = generation.sql, generation.text
            result.prompt_tokens, result.completion_tokens = generation.prompt_tokens, generation.completion_tokens
            result.adapter = keys[index]
        return results
