"""One replica's model: the base model, its adapters and batched generation. No Ray here, so the
serving core is testable anywhere; serving/app.py puts it behind Ray Serve."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT
from sqlfoundry.data.formatting import render_prompt
from sqlfoundry.modeling.builtin import cache_dir
from sqlfoundry.modeling.generation import generate_batch
from sqlfoundry.modeling.loading import load_model, load_tokenizer
from sqlfoundry.serving.adapters import BASE, AdapterError, AdapterPool
from sqlfoundry.serving.config import ServeConfig


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
    error: str | None = None  # an AdapterError kind
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
        )

    def generate(self, requests: list[SqlRequest]) -> list[SqlResult]:
        """Answer a batch; a row whose adapter cannot be served gets an error and the rest still run."""
        results = [SqlResult() for _ in requests]
        keys: list[str | None] = []
        for request, result in zip(requests, results):
            key = None
            if request.adapter:
                try:
                    key = self.adapters.resolve(request.adapter)
                except AdapterError as err:
                    result.error, result.detail = err.kind, err.detail
            keys.append(key)
        self.model, load_errors = self.adapters.ensure_loaded(self.model, {k for k in keys if k})
        rows = []
        for index, key in enumerate(keys):
            if key in load_errors:
                results[index].error, results[index].detail = load_errors[key].kind, load_errors[key].detail
            if results[index].error is None:
                rows.append(index)
        if not rows:
            return results
        prompts, names = [], []
        for index in rows:
            adapter = self.adapters.loaded.get(keys[index]) if keys[index] else None
            prompts.append(render_prompt(
                self.tokenizer, requests[index].schema, requests[index].question,
                adapter.system_prompt if adapter else DEFAULT_SYSTEM_PROMPT,
                adapter.chat_template if adapter else None,
            ))
            names.append(adapter.peft_name if adapter else BASE)
        generations = generate_batch(
            self.model, self.tokenizer, prompts,
            max_new_tokens=[requests[index].max_new_tokens for index in rows],
            adapter_names=names if self.adapters.loaded else None,
        )
        for index, generation in zip(rows, generations):
            result = results[index]
            result.sql, result.text = generation.sql, generation.text
            result.prompt_tokens, result.completion_tokens = generation.prompt_tokens, generation.completion_tokens
            result.adapter = keys[index]
        return results
