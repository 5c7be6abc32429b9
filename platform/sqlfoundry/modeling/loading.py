"""Load tokenizer and model from config: builtin aliases, Hub ids or folders; NF4 4-bit or full precision."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os

import torch

from sqlfoundry.config.schema import ModelConfig, QuantizationConfig
from sqlfoundry.modeling.builtin import resolve_model_path

log = logging.getLogger(__name__)

# Used when a base model has no chat template. Plain-text markers need no new tokens (so no
# embedding resize); {% generation %} marks the assistant turn for assistant-only loss.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '### Assistant:\\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '### ' + message['role'] | capitalize + ':\\n' + message['content'] + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (avx512_bf16 or AMX), where bf16 autocast pays."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported(device: str) -> bool:
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def set_cpu_threads(threads: int | None = None) -> int:
    """Use as many torch threads as CPUs this process may run on (oversubscription costs ~10x)."""
    count = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(count)
    return count


def attention_implementation(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_tokenizer(model_cfg: ModelConfig):
    from transformers import AutoTokenizer

    path = resolve_model_path(model_cfg.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(
        path, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code
    )
    if tokenizer.pad_token is None:
        # Padding is masked out everywhere, so any existing token works; eos is always there.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if model_cfg.chat_template:
        tokenizer.chat_template = model_cfg.chat_template
    elif not tokenizer.chat_template:
        log.info("%s has no chat template; using sqlfoundry's plain-text template", model_cfg.name_or_path)
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


def disable_cpu_4bit_repack(model) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for avx512_bf16 on no-grad forwards.

    bitsandbytes 0.50 repacks a Linear4bit's weight in place the first time it runs a no-grad
    forward on such a CPU (an eval step, generation); later training forwards then compute LoRA
    gradients through the repacked layout and get them wrong. Turning the fast path off on every
    Linear4bit keeps the weights in the standard layout. Returns how many layers were changed.
    """
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return 0
    changed = 0
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def load_model(model_cfg: ModelConfig, quant_cfg: QuantizationConfig, device: str | None = None):
    """A causal LM on `device` (CUDA when present), 4-bit NF4 when quant_cfg.mode == "nf4"."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = device or default_device()
    path = resolve_model_path(model_cfg.name_or_path)
    if model_cfg.dtype != "auto":
        dtype = _DTYPES[model_cfg.dtype]
    elif device.startswith("cuda") and bf16_supported(device):
        dtype = torch.bfloat16
    else:
        dtype = torch.float32  # CPU: keep fp32 master weights; bf16 compute comes from autocast
    kwargs = dict(
        revision=model_cfg.revision,
        trust_remote_code=model_cfg.trust_remote_code,
        attn_implementation=attention_implementation(model_cfg.attn_implementation, device),
        dtype=dtype,
    )
    if quant_cfg.mode == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=quant_cfg.double_quant,
            bnb_4bit_compute_dtype=_DTYPES[quant_cfg.compute_dtype],
        )
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quant_cfg.mode == "nf4":
        disable_cpu_4bit_repack(model)
    else:
        model.to(device)
    log.info("loaded %s (%s, %s, attention=%s) on %s", model_cfg.name_or_path, quant_cfg.mode,
             dtype, kwargs["attn_implementation"], device)
    return model


ADAPTER_META = "sqlfoundry_model.json"


def write_adapter_meta(adapter_dir, model_cfg: ModelConfig, quant_cfg: QuantizationConfig, system_prompt: str,
                       few_shot_k: int | None = None) -> None:
    """Record what an adapter needs at inference time: its base model, quantization and prompt, and
    the examples per prompt it was trained with (training records it, 0 too; Pipeline.from_strategy
    retrieves as many)."""
    import json
    from pathlib import Path

    meta = {
        "model": model_cfg.model_dump(mode="json"),
        "quantization": quant_cfg.model_dump(mode="json"),
        "system_prompt": system_prompt,
    }
    if few_shot_k is not None:
        meta["few_shot_k"] = few_shot_k
    (Path(adapter_dir) / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")


def load_for_inference(adapter_dir: str | None = None, base_model: str | None = None, device: str | None = None,
                       trust_remote_code: bool = False):
    """(model, tokenizer, system_prompt) for generation: a trained adapter on its base, or a bare base model.

    `trust_remote_code` is the operator's decision (a CLI flag or a config they wrote), never the
    adapter's: an adapter folder may come from a registry anyone with write access filled, so one
    whose metadata asks for remote code is refused unless the operator allowed it.
    """
    import json
    from pathlib import Path

    from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT

    if adapter_dir is None:
        model_cfg = ModelConfig(name_or_path=base_model or ModelConfig().name_or_path,
                                trust_remote_code=trust_remote_code)
        model = load_model(model_cfg, QuantizationConfig(), device)
        return model.eval(), load_tokenizer(model_cfg), DEFAULT_SYSTEM_PROMPT
    meta_path = Path(adapter_dir) / ADAPTER_META
    if not meta_path.is_file():
        raise FileNotFoundError(f"{adapter_dir} is not a sqlfoundry adapter folder (no {ADAPTER_META})")
    meta = json.loads(meta_path.read_text())
    if meta["model"].get("trust_remote_code") and not trust_remote_code:
        from sqlfoundry.config.loader import ConfigError

        raise ConfigError(f"{adapter_dir}: the adapter's base model {meta['model'].get('name_or_path')!r} needs "
                              "trust_remote_code, which only the operator may grant: rerun with "
                              "--trust-remote-code if you trust that model's code")
    model_cfg = ModelConfig.model_validate({**meta["model"], "trust_remote_code": trust_remote_code})
    if base_model:
        model_cfg.name_or_path = base_model
    from peft import PeftModel

    model = load_model(model_cfg, QuantizationConfig.model_validate(meta["quantization"]), device)
    model = PeftModel.from_pretrained(model, adapter_dir)
    tokenizer = load_tokenizer(model_cfg.model_copy(update={"name_or_path": str(adapter_dir)}))
    return model.eval(), tokenizer, meta["system_prompt"]
