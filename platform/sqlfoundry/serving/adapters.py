"""LoRA adapters on one serving replica: resolved in the registry, checksum-verified, kept in an LRU.

A request names `name`, `name@version` or `name@alias`. Pinned versions never change; a bare name
(latest) or an alias is resolved again once `refresh_s` has passed, so promoting an alias reaches
every replica within that bound without a restart. Each loaded version is one peft adapter on the
shared base model, so rows for different adapters can share a batch (peft's per-row
`adapter_names`).

Whatever goes wrong with one adapter (a bad ref, a storage error, a broken file, a peft error)
becomes an AdapterError for the rows that asked for it, never an exception for the whole batch:

    unknown_adapter      404  the registry has no such name, version or alias
    adapter_mismatch     409  trained on another base model
    adapter_invalid      502  published but unusable: checksum, metadata, peft/safetensors load
    adapter_unavailable  503  the storage failed (unreachable, access denied, throttled); may pass
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
from sqlfoundry.storage.backends import StorageError
from sqlfoundry.storage.registry import AdapterRef, ChecksumError, Registry, RegistryError

log = logging.getLogger(__name__)

BASE = "__base__"  # peft's name for "no adapter" in per-row adapter_names
NEGATIVE_CACHE_SIZE = 1024  # unknown refs remembered per replica; the oldest are forgotten first
_S3_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}  # a missing object is a missing adapter, not a storage failure


class AdapterError(Exception):
    """A request's adapter cannot be served; `kind` maps to an HTTP status (module docstring)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _storage_failed(err: BaseException) -> bool:
    """Whether `err`, or anything it was raised from or while handling, is the storage failing
    (rather than an object being absent). The chain is walked because the registry wraps botocore
    and OS errors in StorageError and RegistryError."""
    from botocore.exceptions import BotoCoreError, ClientError

    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(e, FileNotFoundError) or (isinstance(e, ClientError) and e.response.get("Error", {})
                                                 .get("Code") in _S3_NOT_FOUND) for e in chain):
        return False
    return any(isinstance(e, (ClientError, BotoCoreError, StorageError, OSError)) for e in chain)


def _registry_failure(err: Exception, ref: str, missing: str) -> AdapterError:
    """The AdapterError for an exception from the registry; `missing` is the kind of a plain
    RegistryError (unknown_adapter while resolving, adapter_invalid once the version is known)."""
    if isinstance(err, AdapterError):
        return err
    if _storage_failed(err):
        return AdapterError("adapter_unavailable", f"adapter {ref}: the registry's storage failed "
                                                   f"({type(err).__name__}: {_short(err)}); retry later")
    if isinstance(err, RegistryError) and not isinstance(err, ChecksumError):
        return AdapterError(missing, str(err))
    return AdapterError("adapter_invalid", f"adapter {ref}: {type(err).__name__}: {_short(err)}")


def _short(err: BaseException) -> str:
    return str(err).splitlines()[0][:300] if str(err) else ""


@dataclass(frozen=True)
class LoadedAdapter:
    key: str  # name@version
    peft_name: str  # the same, made safe for a torch module name
    system_prompt: str
    chat_template: str | None


def _check_batchable(key: str, adapter_config: dict) -> None:
    """Rows of different adapters share one batch through peft's per-row `adapter_names`, which only
    plain LoRA supports: an adapter that would load but then fail every batch it joins (DoRA, other
    peft types) is refused here, at load, so only its own rows fail."""
    if adapter_config.get("peft_type") != "LORA" or adapter_config.get("use_dora"):
        kind = "DoRA" if adapter_config.get("use_dora") else adapter_config.get("peft_type")
        raise AdapterError("adapter_invalid", f"{key} is a {kind} adapter; this deployment serves plain LoRA "
                                              "adapters (as sqlfoundry train writes them)")


class AdapterPool:
    def __init__(self, registry: str | None, base_model: str, max_loaded: int, refresh_s: float, cache_dir: Path,
                 negative_ttl_s: float = 5.0, negative_size: int = NEGATIVE_CACHE_SIZE):
        self.registry = Registry(registry) if registry else None
        self.base_model = base_model
        self.max_loaded = max_loaded
        self.refresh_s = refresh_s
        self.negative_ttl_s = negative_ttl_s
        self.negative_size = negative_size
        # One folder per process: replicas on one node never race on the same files.
        self.cache_dir = Path(cache_dir) / f"replica-{os.getpid()}"
        self._resolved: dict[str, tuple[str, float]] = {}  # requested ref -> (name@version, when)
        self._unknown: OrderedDict[str, tuple[float, str]] = OrderedDict()  # ref -> (expires, detail), oldest first
        self.loaded: OrderedDict[str, LoadedAdapter] = OrderedDict()  # LRU, oldest first
        self.loads = 0  # adapters pulled and loaded since start (sqlfoundry_adapter_loads)

    def resolve(self, ref_text: str) -> str:
        """name@version for a requested ref, re-resolving floating refs after refresh_s. Every
        failure is an AdapterError."""
        if self.registry is None:
            raise AdapterError("unknown_adapter", "this deployment has no adapter registry configured")
        try:
            ref = AdapterRef.parse(ref_text)
        except Exception as err:  # the ingress validates refs; this keeps a bad one to its own row anyway
            raise AdapterError("unknown_adapter", f"invalid adapter ref {ref_text!r}: {_short(err)}") from None
        cached = self._resolved.get(ref_text)
        if cached and (ref.version or time.monotonic() - cached[1] < self.refresh_s):
            return cached[0]
        unknown = self._unknown.get(ref_text)
        if unknown and time.monotonic() < unknown[0]:
            raise AdapterError("unknown_adapter", unknown[1])
        try:
            name, version = self.registry.resolve(ref)
            if ref.version or ref.alias:  # "latest" lists published versions only; a pin or an alias
                self.registry.manifest(name, version)  # may name one that is gone (a crashed delete)
        except Exception as err:
            failure = _registry_failure(err, ref_text, missing="unknown_adapter")
            if failure.kind == "adapter_unavailable" and cached:
                # Storage hiccup on a refresh: keep serving what the ref resolved to last time, and
                # try the storage again after refresh_s rather than on every request.
                log.warning("adapter %s: cannot refresh (%s); still serving %s", ref_text, failure.detail, cached[0])
                self._resolved[ref_text] = (cached[0], time.monotonic())
                return cached[0]
            if failure.kind == "unknown_adapter":
                self._remember_unknown(ref_text, failure.detail)
            raise failure from None
        self._unknown.pop(ref_text, None)
        key = f"{name}@{version}"
        if cached and cached[0] != key:
            log.info("adapter %s now resolves to %s (was %s)", ref_text, key, cached[0])
        self._resolved[ref_text] = (key, time.monotonic())
        return key

    def _remember_unknown(self, ref_text: str, detail: str) -> None:
        if self.negative_ttl_s <= 0:
            return
        self._unknown.pop(ref_text, None)
        self._unknown[ref_text] = (time.monotonic() + self.negative_ttl_s, detail)
        while len(self._unknown) > self.negative_size:
            self._unknown.popitem(last=False)

    def ensure_loaded(self, model, keys: set[str]):
        """Load every adapter in `keys` onto `model` (wrapping it in a PeftModel on first use) and
        evict least-recently-used ones not in `keys` beyond max_loaded. Returns the model and a
        per-key AdapterError for adapters that could not be loaded (whatever the cause)."""
        errors: dict[str, AdapterError] = {}
        for key in sorted(keys):
            if key in self.loaded:
                self.loaded.move_to_end(key)
                continue
            try:
                model = self._load(model, key)
            except AdapterError as err:
                log.warning("adapter %s not loaded: %s: %s", key, err.kind, err.detail)
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
            self.registry.pull(key, folder)  # sha256 of every file checked
        except Exception as err:
            raise _registry_failure(err, key, missing="adapter_invalid") from None
        peft_name = re.sub(r"[^A-Za-z0-9_]", "_", key)
        try:
            meta_path = folder / ADAPTER_META
            if not meta_path.is_file():
                raise AdapterError("adapter_invalid", f"{key} has no {ADAPTER_META}; push adapters made by "
                                                      "sqlfoundry train")
            meta = json.loads(meta_path.read_text())
            trained_on = meta["model"]["name_or_path"]
            if trained_on != self.base_model:
                raise AdapterError("adapter_mismatch", f"{key} was trained on {trained_on!r} but this deployment "
                                                       f"serves {self.base_model!r}")
            _check_batchable(key, json.loads((folder / "adapter_config.json").read_text()))
            loaded = LoadedAdapter(key, peft_name, meta["system_prompt"], meta["model"].get("chat_template"))
            if isinstance(model, PeftModel):
                model.load_adapter(str(folder), adapter_name=peft_name)
            else:
                model = PeftModel.from_pretrained(model, str(folder), adapter_name=peft_name)
        except Exception as err:
            shutil.rmtree(folder, ignore_errors=True)
            _discard(model, peft_name)
            if isinstance(err, AdapterError):
                raise
            raise AdapterError("adapter_invalid", f"{key} cannot be loaded: {type(err).__name__}: "
                                                  f"{_short(err)}") from None
        model.eval()
        self.loaded[key] = loaded
        self.loads += 1
        log.info("loaded adapter %s (%d loaded)", key, len(self.loaded))
        return model

    def evict(self, model, key: str):
        """Unload `key` now (an adapter that loaded but breaks generation); returns the model."""
        if key in self.loaded:
            self._evict(model, key)
        return model

    def _evict(self, model, key: str) -> None:
        adapter = self.loaded.pop(key)
        model.delete_adapter(adapter.peft_name)
        name, _, version = key.partition("@")
        shutil.rmtree(self.cache_dir / name / version, ignore_errors=True)
        log.info("evicted adapter %s (%d loaded)", key, len(self.loaded))


def _discard(model, peft_name: str) -> None:
    """Remove what a failed load left on `model`: peft injects the LoRA layers before it reads the
    weights, so a bad weights file leaves an adapter (random-initialised, or half-loaded) behind,
    and on the first load it sits inside the bare base model, with no PeftModel to delete it from."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import delete_adapter

    if isinstance(model, PeftModel) and peft_name in model.peft_config:
        model.delete_adapter(peft_name)
        return
    delete_adapter(model, peft_name, prefix="lora_")  # layers injected before a failure, if any
    configs = getattr(model, "peft_config", None)
    if not isinstance(model, PeftModel) and isinstance(configs, dict):
        configs.pop(peft_name, None)  # left on the bare model by the PeftModel that never came back
        if not configs:
            del model.peft_config
