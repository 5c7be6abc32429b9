"""LoRA adapters from config (peft) and the LoRA+ optimizer (B matrices learn `ratio` times faster)."""

from __future__ import annotations

import torch

from sqlfoundry.config.loader import ConfigError
from sqlfoundry.config.schema import LoraConfig, LoraPlusConfig, TrainingConfig


def peft_lora_config(cfg: LoraConfig):
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def apply_lora(model, cfg: LoraConfig, gradient_checkpointing: bool = False):
    """Wrap `model` in a trainable peft LoRA model (k-bit preparation first for 4-bit models)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    try:
        return get_peft_model(model, peft_lora_config(cfg))
    except ValueError as err:
        if "not found in the base model" in str(err):
            names = sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if "." in name})
            raise ConfigError(
                f"lora.target_modules {cfg.target_modules}: not in this model. Module names it has: {names}"
            ) from None
        raise


def build_loraplus_optimizer(model, training: TrainingConfig, loraplus: LoraPlusConfig) -> torch.optim.Optimizer:
    """AdamW with peft's LoRA+ parameter groups.

    peft's `create_loraplus_optimizer` already encodes the grouping the paper prescribes (A at lr,
    B at lr x ratio, LoRA on embeddings at their own lr, no decay on 1-d parameters), so we use it
    rather than keep a second copy of that logic.
    """
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(
        model,
        torch.optim.AdamW,
        lr=training.learning_rate,
        loraplus_lr_ratio=loraplus.ratio,
        loraplus_lr_embedding=loraplus.embedding_lr,
        loraplus_weight_decay=training.weight_decay,
    )
