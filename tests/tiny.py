"""A tiny random Llama with a small byte-level BPE tokenizer and a ChatML chat template.

Built in seconds, so unit tests exercise the real transformers/peft/trl code paths without any
downloaded weights. The tokenizer is trained on synthetic text-to-SQL rows, so SQL round-trips
exactly through encode/decode.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tokenizer(vocab_size: int = 800):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT
    from sqlfoundry.data.synth import generate_rows

    corpus = [DEFAULT_SYSTEM_PROMPT]
    for row in generate_rows(3000, seed=123):
        corpus.extend(row.values())
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def build_tiny_llama(folder: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Save a random Llama + tokenizer into `folder`; returns the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        # Large enough that a frozen random lm_head can express peaked distributions (with 0.02 the
        # final RMSNorm caps every logit near 1.3, and LoRA cannot push the loss below ~6.4).
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_random_adapter(base_dir: Path, folder: Path, seed: int, system_prompt: str | None = None) -> Path:
    """A LoRA adapter with random (non-zero) A and B, so it visibly changes the base model's output,
    saved the way `sqlfoundry train` saves one (weights + sqlfoundry_model.json)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT, ModelConfig, QuantizationConfig
    from sqlfoundry.modeling.loading import write_adapter_meta

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(folder)
    write_adapter_meta(folder, ModelConfig(name_or_path=str(base_dir)), QuantizationConfig(),
                       system_prompt or DEFAULT_SYSTEM_PROMPT)
    return Path(folder)
