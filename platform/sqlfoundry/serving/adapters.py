"""LoRA adapters on one serving replica: resolved in the registry, checksum-verified, kept in an LRU.

A request names `name`, `name@version` or `name@alias`. Pinned versions never change; a bare name
(latest) or an alias is resolved again once `refresh_s` has passed, so promoting an alias reaches
every replica within that bound without a restart. Each loaded version is one peft adapter on the
shared base model, so rows for different adapters can share a batch (peft's per-row
`adapter_names`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sqlfoundry.modeling.loading import ADAPTER_META
from sqlfoundry.storage.registry import AdapterRef, Registry, RegistryError

log = logging.getLogger(__name__)

BASE = "__base__"  # peft's name for "no adapter" in per-row adapter_names


class AdapterError(Exception):
    """A request's adapter cannot be served; `kind` maps to an HTTP status."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind  # unknown_adapter | adapter_mismatch | adapter_unavailable
        self.detail = detail


@dataclass(frozen=True)
class LoadedAdapter:
    key: str  # name@version
    peft_name: str  # the same, made safe for a torch module name
    system_prompt: str
    chat_template: str | None


class AdapterPool:
    def __init__(self, registry: str | None, base_model: str, max_loaded: int, refresh_s: float, cache_dir: Path):
        self.registry = Registry(registry) if registry else None
        self.base_model = base_model
        self.max_loaded = max_loaded
        self.refresh_s = refresh_s
        # One folder per process: replicas on one node never race on the same files.
        self.cache_dir = Path(cache_dir) / f"replica-{os.getpid()}"
        self._resolved: dict[str, tuple[str, float]] = {}  # requested ref -> (name@version, when)
        self.loaded: OrderedDict[str, LoadedAdapter] = OrderedDict()  # LRU, oldest first

    def resolve(self, ref_text: str) -> str:
        """name@version for a requested ref, re-resolving floating refs after refresh_s."""
        if self.registry is None:
            raise AdapterError("unknown_adapter", "this deployment has no adapter registry configured")
        ref = AdapterRef.parse(ref_text)
        cached = self._resolved.get(ref_text)
        if cached and (ref.version or time.monotonic() - cached[1] < self.refresh_s):
            return cached[0]
        try:
            name, version = self.registry.resolve(ref)
            if ref.version:
                self.registry.manifest(name, version)  # aliases and "latest" resolve to published versions only
        except RegistryError as err:
            raise AdapterError("unknown_adapter", str(err)) from None
        key = f"{name}@{version}"
        if cached and cached[0] != key:
            log.info("adapter %s now resolves to %s (was %s)", ref_text, key, cached[0])
        self._resolved[ref_text] = (key, time.monotonic())
        return key

    def ensure_loaded(self, model, keys: set[str]):
        """Load every adapter in `keys` onto `model` (wrapping it in a PeftModel on first use) and
        evict least-recently-used ones not in `keys` beyond max_loaded. Returns the model and a
        per-key error for adapters that could not be loaded."""
        errors: dict[str, AdapterError] = {}
        for key in sorted(keys):
            if key in self.loaded:
                self.loaded.move_to_end(key)
                continue
            try:
                model = self._load(model, key)
            except AdapterError as err:
                errors[key] = err
        for key in list(self.loaded):
            if len(self.loaded) <= self.max_loaded:
                break
            if key not in keys:
                self._evict(model, key)
        return model, errors

    def _load(self, model, key: str):
        from peft import PeftModel

        name, _, version = key.partition("@")
        folder = self.cache_dir / name / version
        try:
            self.registry.pull(f"{name}@{version}", folder)  # sha256 of every file checked
        except RegistryError as err:  # includes ChecksumError
            raise AdapterError("adapter_unavailable", str(err)) from None
        meta_path = folder / ADAPTER_META
        if not meta_path.is_file():
            raise AdapterError("adapter_unavailable", f"{key} has no {ADAPTER_META}; push adapters made by sqlfoundry train")
        meta = json.loads(meta_path.read_text())
        trained_on = meta["model"]["name_or_path"]
        if trained_on != self.base_model:
            shutil.rmtree(folder, ignore_errors=True)
            raise AdapterError("adapter_mismatch", f"{key} was trained on {trained_on!r} but this deployment "
                                                   f"serves {self.base_model!r}")
        peft_name = re.sub(r"[^A-Za-z0-9_]", "_", key)
        if isinstance(model, PeftModel):
            model.load_adapter(str(folder), adapter_name=peft_name)
        else:
            model = PeftModel.from_pretrained(model, str(folder), adapter_name=peft_name)
        model.eval()
        self.loaded[key] = LoadedAdapter(key, peft_name, meta["system_prompt"], meta["model"].get("chat_template"))
        log.info("loaded adapter %s (%d loaded)", key, len(self.loaded))
        return model

    def _evict(self, model, key: str) -> None:
        adapter = self.loaded.pop(key)
        model.delete_adapter(adapter.peft_name)
        name, _, version = key.partition("@")
        shutil.rmtree(self.cache_dir / name / version, ignore_errors=True)
        log.info("evicted adapter %s (%d loaded)", key, len(self.loaded))
