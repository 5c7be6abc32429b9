"""4-bit NF4 on CPU: LoRA gradients through the quantized model match the dequantized fp32 model.

bitsandbytes 0.50 repacks 4-bit weights for avx512_bf16 CPUs on the first no-grad forward and then
computes wrong LoRA gradients; sqlfoundry turns that path off. The test runs an eval-mode no-grad
forward first, exactly where the repack would happen.
"""

import copy

import pytest
import torch

bnb = pytest.importorskip("bitsandbytes")

from sqlfoundry.config.schema import LoraConfig, ModelConfig, QuantizationConfig  # noqa: E402
from sqlfoundry.modeling.loading import load_model  # noqa: E402
from sqlfoundry.modeling.lora import apply_lora  # noqa: E402


def _dequantized_copy(quantized_peft_model):
    """The same network in fp32: every Linear4bit replaced by an nn.Linear with its dequantized weight."""
    model = copy.deepcopy(quantized_peft_model)
    for module in model.modules():
        for name, child in list(module.named_children()):
            if isinstance(child, bnb.nn.Linear4bit):
                weight = bnb.functional.dequantize_4bit(child.weight.data, child.weight.quant_state).float()
                linear = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                linear.weight.data.copy_(weight)
                linear.weight.requires_grad_(False)
                setattr(module, name, linear)
    return model


def _lora_grads(model, input_ids):
    model.zero_grad()
    model.train()
    out = model(input_ids=input_ids, labels=input_ids, use_cache=False)
    out.loss.backward()
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None}


def _gradients(guarded: bool, model_dir) -> tuple[dict, dict]:
    """(LoRA gradients through the NF4 model, the same through its dequantized fp32 copy)."""
    quant = QuantizationConfig(mode="nf4", compute_dtype="float32", double_quant=True)
    model = load_model(ModelConfig(name_or_path=str(model_dir)), quant, device="cpu")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(layer.support_avx512bf16_for_cpu is False for layer in layers)
    if not guarded:  # what bitsandbytes does by default on an avx512_bf16 CPU
        for layer in layers:
            layer.support_avx512bf16_for_cpu = True
    model = apply_lora(model, LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]))
    torch.manual_seed(0)
    for name, param in model.named_parameters():  # non-zero B so gradients flow into A as well
        if "lora_B" in name:
            param.data.normal_(0, 0.02)
    input_ids = torch.randint(3, 700, (2, 24))

    reference = _dequantized_copy(model)
    model.eval()
    with torch.no_grad():  # the forward that would trigger the avx512_bf16 repack
        model(input_ids=input_ids, use_cache=False)

    fp32_grads = _lora_grads(reference, input_ids)
    assert len(fp32_grads) == 2 * 3 * 2  # A and B of 3 target modules in 2 layers
    return _lora_grads(model, input_ids), fp32_grads


def _max_relative_error(quantized_grads: dict, fp32_grads: dict) -> float:
    return max(float((g - fp32_grads[n]).norm() / fp32_grads[n].norm()) for n, g in quantized_grads.items())


def test_lora_gradients_through_nf4_match_dequantized_fp32(tiny_model_dir):
    quantized, fp32 = _gradients(guarded=True, model_dir=tiny_model_dir)
    assert quantized.keys() == fp32.keys()
    assert _max_relative_error(quantized, fp32) < 0.02


def test_unguarded_repack_really_breaks_gradients(tiny_model_dir):
    """Control: with bitsandbytes' CPU repack left on, the same comparison fails, so the test above can
    fail. How it breaks depends on the CPU: without avx512_bf16 the gradients are wrong; with AMX /
    avx512_bf16 the repacked layers give no LoRA gradients at all. Either is a failure of the check above."""
    quantized, fp32 = _gradients(guarded=False, model_dir=tiny_model_dir)
    assert quantized.keys() != fp32.keys() or _max_relative_error(quantized, fp32) > 0.1
