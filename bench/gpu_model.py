"""The model side of bench/gpu_check.py: a random Llama of deepseek-coder-6.7B's shape built on the
device, NF4 quantization in place, and LoRA / LoRA+ the way sqlfoundry's recipe sets them up.

The GPU machine has no pydantic, and sqlfoundry.modeling.loading/lora import the pydantic config, so
the few lines used from them are mirrored here, each saying where from; RECIPE holds the values of
jobs/configs/opencodeinterpreter-6.7b-a100.yaml (tests/test_gpu_check.py checks they match).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Recipe:
    """jobs/configs/opencodeinterpreter-6.7b-a100.yaml as plain values."""

    lora_r: int = 8
    lora_alpha: float = 32
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    loraplus_ratio: float = 1.25
    loraplus_embedding_lr: float = 1e-6
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    neftune_alpha: float = 5.0
    double_quant: bool = True
    gradient_checkpointing: bool = True
    max_length: int = 3072  # packed row length
    per_device_batch_size: int = 8  # packed rows per step


RECIPE = Recipe()
MAX_GRAD_NORM = 1.0  # the Trainer's default, which the recipe keeps


@dataclass(frozen=True)
class Shape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab: int
    seq: int  # packed row length
    rows: int  # packed rows per step
    prompt_tokens: int
    new_tokens: int
    batch_sizes: tuple[int, ...]
    matmul_size: int


# deepseek-coder-6.7b-base's config.json (the base of OpenCodeInterpreter-DS-6.7B).
FULL = Shape(hidden=4096, intermediate=11008, layers=32, heads=32, vocab=32256, seq=RECIPE.max_length,
             rows=RECIPE.per_device_batch_size, prompt_tokens=128, new_tokens=64, batch_sizes=(1, 16, 64),
             matmul_size=8192)
TINY = Shape(hidden=64, intermediate=128, layers=2, heads=4, vocab=512, seq=128, rows=2, prompt_tokens=16,
             new_tokens=8, batch_sizes=(1, 2, 4), matmul_size=512)


def attention_implementation(device: str) -> str:
    # Mirrors sqlfoundry.modeling.loading.attention_implementation("auto", device).
    if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def autocast(device: str, dtype: torch.dtype):
    # Mirrors sqlfoundry.modeling.generation.autocast_context (the Trainer's bf16=True does the same).
    return torch.autocast(device_type=device, dtype=dtype, enabled=dtype == torch.bfloat16)


def llama_config(shape: Shape, attn: str):
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=shape.hidden, intermediate_size=shape.intermediate, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.heads, vocab_size=shape.vocab,
        max_position_embeddings=16384, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 100000.0},
        attn_implementation=attn, use_cache=False,
    )


def quantize_nf4(model, compute_dtype: torch.dtype, double_quant: bool) -> None:
    """Replace every nn.Linear but lm_head by an NF4 Linear4bit, in place, layer by layer (what
    transformers' bitsandbytes quantizer does while loading: lm_head stays unquantized)."""
    import bitsandbytes as bnb

    device = next(model.parameters()).device
    lm_head = model.get_output_embeddings()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear or child is lm_head:
                continue
            layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=compute_dtype, compress_statistics=double_quant,
                                      quant_type="nf4", device="meta")
            layer.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type="nf4",
                                             compress_statistics=double_quant, module=layer).to(device)
            if child.bias is not None:
                layer.bias = child.bias
            # Mirrors sqlfoundry.modeling.loading.disable_cpu_4bit_repack: on an avx512_bf16 CPU
            # bitsandbytes 0.50 repacks the weight on a no-grad forward and LoRA gradients break.
            layer.support_avx512bf16_for_cpu = False
            setattr(parent, name, layer)
    model.is_loaded_in_4bit = True  # what transformers' bitsandbytes quantizer sets; peft reads it


def build_model(shape: Shape, device: str, dtype: torch.dtype, attn: str, quantize: bool):
    """Random weights, created on `device` in `dtype` (no fp32 copy in host RAM), NF4 if `quantize`."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(llama_config(shape, attn), dtype=dtype)
    if quantize:
        quantize_nf4(model, dtype, RECIPE.double_quant)
    return model


def lora_config(random_init: bool = False):
    # Mirrors sqlfoundry.modeling.lora.peft_lora_config.
    from peft import LoraConfig

    return LoraConfig(r=RECIPE.lora_r, lora_alpha=RECIPE.lora_alpha, lora_dropout=RECIPE.lora_dropout,
                      target_modules=list(RECIPE.target_modules), bias="none", task_type="CAUSAL_LM",
                      init_lora_weights=not random_init)


def trainable_lora(model, quantized: bool):
    """Mirrors sqlfoundry.modeling.lora.apply_lora; for the bf16 base, gradient checkpointing is
    enabled the way the Trainer does it with gradient_checkpointing=True."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=RECIPE.gradient_checkpointing)
    elif RECIPE.gradient_checkpointing:
        model.enable_input_require_grads()
        model.gradient_checkpointing_enable()
    return get_peft_model(model, lora_config())


def loraplus_optimizer(model):
    # Mirrors sqlfoundry.modeling.lora.build_loraplus_optimizer.
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=RECIPE.learning_rate,
                                     loraplus_lr_ratio=RECIPE.loraplus_ratio,
                                     loraplus_lr_embedding=RECIPE.loraplus_embedding_lr,
                                     loraplus_weight_decay=RECIPE.weight_decay)
