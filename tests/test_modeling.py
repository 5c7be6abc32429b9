import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sqlfoundry.config import ConfigError
from sqlfoundry.config.schema import LoraConfig, LoraPlusConfig, ModelConfig, TrainingConfig
from sqlfoundry.modeling.loading import FALLBACK_CHAT_TEMPLATE, attention_implementation, load_tokenizer
from sqlfoundry.modeling.lora import apply_lora, build_loraplus_optimizer
from sqlfoundry.modeling.neftune import NEFTune, sequence_lengths


@pytest.fixture()
def tiny(tiny_model_dir):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")


@pytest.mark.parametrize("ratio", [1.0, 4.0, 16.0])
def test_loraplus_parameter_groups(tiny, ratio):
    model = apply_lora(tiny, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "embed_tokens"]))
    training = TrainingConfig(learning_rate=1e-3, weight_decay=0.01)
    optimizer = build_loraplus_optimizer(model, training, LoraPlusConfig(ratio=ratio, embedding_lr=5e-6))
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {names[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}
    decay_of = {names[id(p)]: group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    linear_a = [n for n in lr_of if "lora_A" in n]
    linear_b = [n for n in lr_of if "lora_B" in n]
    embedding = [n for n in lr_of if "lora_embedding" in n]
    assert len(linear_a) == len(linear_b) == 2 * 2  # q_proj and v_proj in both layers
    assert len(embedding) == 2  # lora_embedding_A and _B
    assert all(lr_of[n] == pytest.approx(1e-3) for n in linear_a)
    assert all(lr_of[n] == pytest.approx(1e-3 * ratio) for n in linear_b)
    assert all(lr_of[n] == pytest.approx(5e-6) for n in embedding)
    assert all(decay_of[n] == pytest.approx(0.01) for n in linear_a + linear_b)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(lr_of)  # every trainable parameter is optimized, exactly once


def test_unknown_lora_targets_name_the_key(tiny):
    with pytest.raises(ConfigError, match="lora.target_modules"):
        apply_lora(tiny, LoraConfig(target_modules=["query_key_value"]))


def test_neftune_noise_only_in_training_mode_and_scaled(tiny):
    ids = torch.randint(3, 700, (2, 40))
    embedding = tiny.get_input_embeddings()
    clean = embedding(ids).detach()
    alpha = 5.0
    hook = NEFTune.attach(tiny, alpha)
    captured = []  # registered after NEFTune's hook, so it sees the noised output
    embedding.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    tiny.eval()
    tiny(input_ids=ids, use_cache=False)
    assert torch.equal(captured[-1], clean)  # eval: no noise
    tiny.train()
    tiny(input_ids=ids, use_cache=False)
    noise = captured[-1] - clean
    bound = alpha / (40 * tiny.config.hidden_size) ** 0.5
    assert noise.abs().max() <= bound * 1.0001
    assert noise.abs().max() > bound * 0.9 and noise.std() > bound / 3  # uniform noise reaching the bound
    hook.detach()
    tiny(input_ids=ids, use_cache=False)
    assert torch.equal(captured[-1], clean)  # detached: no noise


def test_neftune_scales_each_packed_sequence_by_its_own_length():
    position_ids = torch.tensor([[0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4, 5]])
    lengths = sequence_lengths(position_ids, None, torch.Size([1, 12]))
    assert lengths.tolist() == [[4] * 4 + [2] * 2 + [6] * 6]
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert sequence_lengths(None, mask, torch.Size([2, 4])).tolist() == [[3] * 4, [4] * 4]


@pytest.mark.parametrize("use_cache, isolated", [(False, True), (True, False)])
def test_packed_sequences_are_isolated_without_cache(tiny, use_cache, isolated):
    """Padding-free packing: with use_cache=False each sequence sees only itself (a cache breaks it)."""
    tiny.eval()
    first, second = torch.randint(3, 700, (1, 7)), torch.randint(3, 700, (1, 5))
    packed = torch.cat([first, second], dim=1)
    position_ids = torch.cat([torch.arange(7), torch.arange(5)])[None]
    with torch.no_grad():
        alone = torch.cat([tiny(input_ids=first, use_cache=False).logits,
                           tiny(input_ids=second, use_cache=False).logits], dim=1)
        together = tiny(input_ids=packed, position_ids=position_ids, use_cache=use_cache).logits
    assert torch.allclose(alone, together, atol=1e-4) is isolated


def test_attention_choice():
    assert attention_implementation("auto", "cpu") == "sdpa"
    assert attention_implementation("eager", "cuda") == "eager"


def test_tokenizer_gets_pad_and_fallback_template(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    loaded = load_tokenizer(ModelConfig(name_or_path=str(tmp_path)))
    assert loaded.pad_token == loaded.eos_token
    assert loaded.chat_template == FALLBACK_CHAT_TEMPLATE
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "SELECT 1"}]
    out = loaded.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert loaded.decode(masked) == "SELECT 1" + loaded.eos_token


def _adapter_folder(model_dir, folder, trust_remote_code: bool):
    """A real peft adapter on the tiny model, with sqlfoundry's metadata as `sqlfoundry train` writes it."""
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    from sqlfoundry.config.schema import QuantizationConfig
    from sqlfoundry.modeling.loading import write_adapter_meta

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    get_peft_model(base, PeftLoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(folder)
    write_adapter_meta(folder, ModelConfig(name_or_path=str(model_dir), trust_remote_code=trust_remote_code),
                       QuantizationConfig(), "SCHEMA:\n{schema}")
    return folder


def test_an_adapter_cannot_turn_on_trust_remote_code(tiny_model_dir, tmp_path, monkeypatch):
    from sqlfoundry.modeling import loading

    seen = []
    real_load_model = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda cfg, *a, **k: seen.append(cfg.trust_remote_code)
                        or real_load_model(cfg, *a, **k))
    asking = _adapter_folder(tiny_model_dir, tmp_path / "asking", trust_remote_code=True)
    with pytest.raises(ConfigError, match="only the operator may grant.*--trust-remote-code"):
        loading.load_for_inference(str(asking))
    assert seen == []  # refused before any model code was loaded
    loading.load_for_inference(str(asking), trust_remote_code=True)  # the operator allowed it
    plain = _adapter_folder(tiny_model_dir, tmp_path / "plain", trust_remote_code=False)
    loading.load_for_inference(str(plain))
    assert seen == [True, False]  # the operator's choice, never the adapter's


@pytest.mark.parametrize("command", ["generate", "eval"])
def test_cli_trust_remote_code_flag_is_the_only_way_in(tiny_model_dir, tmp_path, capsys, command):
    import json

    from sqlfoundry.cli import main

    asking = str(_adapter_folder(tiny_model_dir, tmp_path / "asking", trust_remote_code=True))
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "How many heads?", "context": "CREATE TABLE head (age INTEGER)",
                                "answer": "SELECT COUNT(*) FROM head"}) + "\n")
    argv = {"generate": ["generate", "--adapter", asking, "--schema", "CREATE TABLE head (age INTEGER)",
                         "--question", "How many heads?", "--max-new-tokens", "4"],
            "eval": ["eval", "--data", str(rows), "--adapter", asking, "--limit", "1", "--max-new-tokens", "4",
                     "--view", "original", "--out", str(tmp_path / "eval")]}[command]
    assert main(argv) == 2
    assert "--trust-remote-code" in capsys.readouterr().err
    assert main([*argv, "--trust-remote-code"]) in (0, 1)  # it ran: 1 only when the tiny model wrote no SQL
