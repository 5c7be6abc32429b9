"""The QLoRA+ / NEFTune supervised fine-tuning recipe. Reads top to bottom:

config -> data (+ retrieved examples when strategy.few_shot_k > 0) -> tokenizer + model (NF4 optional) ->
LoRA -> LoRA+ optimizer -> NEFTune ->
TRL SFTTrainer (padding-free packing, loss on the SQL only, eval, early stopping, checkpoints)
-> adapter + tokenizer + resolved config in the output folder -> optional generation check.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform as _platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from sqlfoundry import __version__
from sqlfoundry.answering.retrieve import ExampleIndex
from sqlfoundry.config.loader import ConfigError, dump_config
from sqlfoundry.config.schema import RunConfig
from sqlfoundry.data.examples import write_examples
from sqlfoundry.data.formatting import render_prompt, training_example
from sqlfoundry.data.prepare import (
    EXAMPLES_KEY,
    PreparedData,
    attach_examples,
    example_pool,
    fingerprint,
    prepare_data,
)
from sqlfoundry.sql.compare import exact_match
from sqlfoundry.modeling.builtin import resolve_model_path
from sqlfoundry.modeling.generation import generate_batch
from sqlfoundry.modeling.loading import (
    attention_implementation,
    bf16_supported,
    default_device,
    load_model,
    load_tokenizer,
    set_cpu_threads,
    write_adapter_meta,
)
from sqlfoundry.modeling.lora import apply_lora, build_loraplus_optimizer
from sqlfoundry.modeling.neftune import NEFTune
from sqlfoundry.training.callbacks import FailOnceAtStep, JsonlMetricsCallback, training_curve

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"


@dataclass
class TrainResult:
    output_dir: str
    adapter_dir: str
    global_step: int
    train_loss: float | None
    eval_loss: float | None
    tokens_per_second: float | None
    train_runtime_s: float | None
    data_report: dict = field(default_factory=dict)
    generation_exact_match: float | None = None
    # Strict execution accuracy of the same generations on databases synthesized from each row's
    # schema (evaluation.scoring); rows whose gold SQL is constant or fails there are not counted.
    generation_execution_accuracy: float | None = None
    generation_samples: list[dict] = field(default_factory=list)
    effective_batch_size: int | None = None
    resumed_from_step: int | None = None  # global step of the checkpoint this run resumed from
    pushed_version: str | None = None  # registry version when output.push_to is set

    def to_dict(self) -> dict:
        return asdict(self)


def check_runtime(config: RunConfig) -> None:
    """Checks that need the environment, done before any data or model is loaded."""
    out = Path(config.output.dir)
    if (out / ADAPTER_DIR / "adapter_config.json").exists() and not config.output.overwrite:
        raise ConfigError(
            f"output.dir {out} already holds a trained adapter; choose another output.dir "
            "or set output.overwrite=true"
        )
    if "wandb" in config.training.report_to and importlib.util.find_spec("wandb") is None:
        raise ConfigError("training.report_to: wandb is not installed (pip install wandb) or remove it")
    if config.output.push_to:
        from sqlfoundry.storage.backends import StorageError, open_store

        try:
            open_store(config.output.push_to).check()
        except StorageError as err:
            raise ConfigError(f"output.push_to: {err}") from None
    if config.quantization.mode == "nf4" and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("quantization.mode=nf4 needs bitsandbytes (pip install bitsandbytes) or set mode: none")


def use_packing(config: RunConfig, device: str) -> bool:
    if config.training.packing != "auto":
        return config.training.packing == "on"
    return attention_implementation(config.model.attn_implementation, device).startswith("flash_attention")


def _sft_config(config: RunConfig, out: Path, use_bf16: bool, device: str):
    from trl import SFTConfig

    t = config.training
    early_stopping = t.early_stopping_patience is not None
    if "wandb" in t.report_to and not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")  # runs log locally; `wandb sync` uploads later
    return SFTConfig(
        output_dir=str(out / CHECKPOINT_DIR),
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_batch_size,
        per_device_eval_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        logging_steps=t.logging_steps,
        eval_strategy="steps",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss" if early_stopping else None,
        greater_is_better=False if early_stopping else None,
        bf16=use_bf16,
        use_cpu=device == "cpu",
        gradient_checkpointing=t.gradient_checkpointing,
        report_to=list(t.report_to) or "none",
        seed=t.seed,
        data_seed=t.seed,
        max_length=t.max_length,
        packing=use_packing(config, device),
        packing_strategy="bfd",  # best-fit decreasing, padding-free: no token is wasted on padding
        completion_only_loss=True,  # loss on the assistant's SQL only
        include_num_input_tokens_seen="non_padding",  # tokens/s counts real tokens, not padding
        dataloader_num_workers=0,
        # one bar, the CLI's (training/progress.py); the Trainer then prints each logged dict as a
        # plain line, which the quiet console sends to output.dir/train.log
        disable_tqdm=True,
        ddp_find_unused_parameters=False,  # every LoRA parameter gets a gradient; skip the extra graph walk
    )


def _example(row: dict, system_prompt: str) -> dict:
    """The training example of a prepared row, with its retrieved examples if it has any."""
    return training_example(row, system_prompt, row.get(EXAMPLES_KEY, ()))


def few_shot(prepared: PreparedData, k: int) -> list[dict]:
    """The example pool of the training split (what the adapter's examples.jsonl gets); with k > 0
    every row gets its k most similar pool rows, retrieved as serving retrieves them.

    The retrieval happens here, not in data.prepare: answering imports data, so data may not import
    answering, and moving the index below both would split it from serving's. Training sits above
    both and hands prepare the serving search as a plain callable: one ranking code, same examples."""
    pool, positions = example_pool(prepared.train)
    if k:
        attach_examples(prepared, pool, positions, ExampleIndex(pool).search, k)
        log.info("training prompts show up to %d examples retrieved from %d training rows", k, len(pool))
        prepared.report.fingerprint = fingerprint(prepared.train, prepared.eval)  # the examples are trained on too
    return pool


def _datasets(prepared: PreparedData, system_prompt: str):
    from datasets import Dataset

    def build(rows):
        return Dataset.from_list([_example(row, system_prompt) for row in rows])

    return build(prepared.train), build(prepared.eval)


def drop_too_long(prepared: PreparedData, tokenizer, system_prompt: str, max_length: int) -> None:
    """Drop (and count) rows whose prompt + SQL exceed max_length tokens. TRL would truncate them,
    and a truncated row teaches the model to stop mid-query: wide schemas make such rows common."""
    def fits(row) -> bool:
        example = _example(row, system_prompt)
        ids = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=True,
                                            return_dict=True)["input_ids"]
        return len(ids) <= max_length

    for split in ("train", "eval"):
        rows = getattr(prepared, split)
        kept = [row for row in rows if fits(row)]
        if len(kept) < len(rows):
            key = f"too_long_{split}"
            prepared.report.dropped[key] = prepared.report.dropped.get(key, 0) + len(rows) - len(kept)
            log.warning("dropped %d %s rows longer than training.max_length=%d tokens", len(rows) - len(kept),
                        split, max_length)
        setattr(prepared, split, kept)
    if not prepared.train or not prepared.eval:
        raise ConfigError(f"training.max_length={max_length}: no {'train' if not prepared.train else 'eval'} row fits; "
                          "raise training.max_length or use narrower schemas")
    prepared.report.train_rows, prepared.report.eval_rows = len(prepared.train), len(prepared.eval)
    prepared.report.fingerprint = fingerprint(prepared.train, prepared.eval)  # of the rows really trained on


def _write_json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _generation_check(model, tokenizer, config: RunConfig, rows: list[dict]) -> tuple[float, float | None, list[dict]]:
    """Greedy generations for the first eval rows: (exact match, execution accuracy, samples)."""
    # The evaluator's own scoring (pure functions over sql/), so this figure means what eval's EX means.
    from sqlfoundry.evaluation.scoring import SCORED, score_schema_only

    rows = rows[: config.training.final_generation_samples]
    # Rendered here rather than by generate_sql so each row shows the examples it was trained with.
    prompts = [render_prompt(tokenizer, r["context"], r["question"], config.data.system_prompt,
                             examples=r.get(EXAMPLES_KEY, ())) for r in rows]
    generations = []
    for start in range(0, len(prompts), 8):
        generations += generate_batch(model, tokenizer, prompts[start:start + 8], config.training.max_new_tokens)
    samples = []
    for row, generation in zip(rows, generations):
        score = score_schema_only(row["context"], row["answer"], generation.sql)
        samples.append({"question": row["question"], "gold": row["answer"], "prediction": generation.sql,
                        "exact_match": exact_match(generation.sql, row["answer"]),
                        "execution_match": score.ex if score.category == SCORED else None})
    executed = [s["execution_match"] for s in samples if s["execution_match"] is not None]
    execution_accuracy = sum(executed) / len(executed) if executed else None
    return sum(s["exact_match"] for s in samples) / len(samples), execution_accuracy, samples


def _final_step_eval(trainer) -> dict | None:
    """The evaluation logged at the last step, if the run ended on one: evaluating again would give
    the same numbers (same weights and rows; NEFTune adds noise only in training mode) for the cost
    of another pass over the eval rows."""
    for record in reversed(trainer.state.log_history):
        if "eval_loss" in record:
            return record if record.get("step") == trainer.state.global_step else None
    return None


def is_main_process() -> bool:
    """Rank 0 of a distributed run (Ray Train sets up torch.distributed), or a single process."""
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


def push_adapter(config: RunConfig, adapter_dir: Path, metrics: dict, data_report: dict,
                 extra: dict | None = None) -> str:
    """Publish `adapter_dir` as a new version of output.adapter_name in output.push_to."""
    from sqlfoundry.storage.registry import Registry

    metadata = {
        "base_model": config.model.name_or_path,
        "base_model_revision": config.model.revision,
        "training_config": config.model_dump(mode="json"),
        "data": {"fingerprint": data_report.get("fingerprint"), "report": data_report},
        "metrics": metrics,
        **(extra or {}),
    }
    version = Registry(config.output.push_to).push(adapter_dir, config.output.adapter_name, metadata)
    log.info("pushed adapter %s@%s to %s", config.output.adapter_name, version, config.output.push_to)
    return version


def _checkpoint_state(checkpoint: str | bool | None) -> tuple[int | None, int]:
    """(global step, input tokens seen) of a checkpoint to resume from; (None, 0) for none."""
    state = Path(str(checkpoint)) / "trainer_state.json" if isinstance(checkpoint, str) else None
    if not (state and state.is_file()):
        return None, 0
    saved = json.loads(state.read_text())
    return saved["global_step"], int(saved.get("num_input_tokens_seen") or 0)


def train(config: RunConfig, *, resume_from_checkpoint: str | bool | None = None, extra_callbacks=(),
          threads: int | None = None, resumed_with_changes: dict | None = None) -> TrainResult:
    """`resumed_with_changes`: the earlier config and the differing keys when a run was resumed
    anyway with another config (training/resume.py); recorded in the pushed manifest."""
    from transformers import EarlyStoppingCallback, set_seed
    from trl import SFTTrainer

    check_runtime(config)
    out = Path(config.output.dir)
    out.mkdir(parents=True, exist_ok=True)
    device = default_device()
    if device == "cpu":
        set_cpu_threads(threads or config.training.threads)
    set_seed(config.training.seed)
    use_bf16 = config.training.bf16 == "on" or (config.training.bf16 == "auto" and bf16_supported(device))

    # Data: validated, deduplicated, decontaminated, split; the report says what was dropped.
    prepared = prepare_data(config.data, progress=is_main_process())
    tokenizer = load_tokenizer(config.model)
    drop_too_long(prepared, tokenizer, config.data.system_prompt, config.training.max_length)
    # Retrieved examples (strategy.few_shot_k), drawn from the rows that fit on their own; the
    # examples lengthen every prompt, so rows are measured again.
    pool = few_shot(prepared, config.strategy.few_shot_k)
    if config.strategy.few_shot_k:
        drop_too_long(prepared, tokenizer, config.data.system_prompt, config.training.max_length)
    if is_main_process():
        _write_json(out / "data_report.json", prepared.report.to_dict())
    train_ds, eval_ds = _datasets(prepared, config.data.system_prompt)

    # Model: base (optionally NF4), LoRA, LoRA+ optimizer, NEFTune.
    model = load_model(config.model, config.quantization, device)
    model.config.use_cache = False  # a KV cache would also disable packed-sequence isolation
    model = apply_lora(model, config.lora, config.training.gradient_checkpointing)
    optimizer = build_loraplus_optimizer(model, config.training, config.loraplus)
    neftune = NEFTune.attach(model, config.neftune.alpha) if config.neftune.alpha > 0 else None

    callbacks = [JsonlMetricsCallback(out / "metrics.jsonl"), *extra_callbacks]
    fault = FailOnceAtStep.from_env()
    if fault:
        callbacks.append(fault)
    if config.training.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.training.early_stopping_patience))
    trainer = SFTTrainer(
        model=model,
        args=_sft_config(config, out, use_bf16, device),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        optimizers=(optimizer, None),  # the scheduler is built by the Trainer from the config
        callbacks=callbacks,
    )
    effective_batch = (trainer.args.per_device_train_batch_size * trainer.args.world_size
                       * trainer.args.gradient_accumulation_steps)
    log.info("training %d steps: %d train rows, %d eval rows, effective batch %d (= %d per device x %d workers "
             "x %d accumulation), bf16=%s, packing=%s, device=%s", config.training.max_steps, len(train_ds),
             len(eval_ds), effective_batch, trainer.args.per_device_train_batch_size, trainer.args.world_size,
             trainer.args.gradient_accumulation_steps, use_bf16, trainer.args.packing, device)
    # read before training: Ray may delete the checkpoint folder once newer ones exist
    resumed_from_step, tokens_before_resume = _checkpoint_state(resume_from_checkpoint)
    train_output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    if neftune:
        neftune.detach()
    eval_metrics = _final_step_eval(trainer) or trainer.evaluate()
    adapter_dir = out / ADAPTER_DIR
    metrics = train_output.metrics
    runtime = metrics.get("train_runtime")
    tokens = trainer.state.num_input_tokens_seen - tokens_before_resume  # train_runtime covers this run only
    result = TrainResult(
        output_dir=str(out),
        adapter_dir=str(adapter_dir),
        global_step=trainer.state.global_step,
        train_loss=metrics.get("train_loss"),
        eval_loss=eval_metrics.get("eval_loss"),
        tokens_per_second=(tokens / runtime) if tokens and runtime else None,
        train_runtime_s=runtime,
        data_report=prepared.report.to_dict(),
        effective_batch_size=effective_batch,
        resumed_from_step=resumed_from_step,
    )
    if not is_main_process():
        return result

    trainer.model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    write_adapter_meta(adapter_dir, config.model, config.quantization, config.data.system_prompt,
                       config.strategy.few_shot_k)
    # The rows it learned from travel with the adapter: retrieval's default examples (few_shot_k).
    # With k > 0 this is the pool training retrieved from, so serving ranks over the same rows.
    write_examples(adapter_dir, pool)
    (out / "config.yaml").write_text(dump_config(config))
    _write_json(out / "run_info.json", {
        "sqlfoundry_version": __version__,
        "base_model": config.model.name_or_path,
        "base_model_path": resolve_model_path(config.model.name_or_path),
        "revision": config.model.revision,
        "torch": torch.__version__,
        "python": _platform.python_version(),
        "device": device,
        "bf16": use_bf16,
    })

    if config.training.final_generation_samples and prepared.eval:
        (result.generation_exact_match, result.generation_execution_accuracy,
         result.generation_samples) = _generation_check(
            trainer.model, tokenizer, config, prepared.eval)
    if config.output.push_to:
        result.pushed_version = push_adapter(config, adapter_dir, {
            "train_loss": result.train_loss, "eval_loss": result.eval_loss,
            "generation_exact_match": result.generation_exact_match,
            "generation_execution_accuracy": result.generation_execution_accuracy, "global_step": result.global_step,
        }, result.data_report, {"resumed_from_step": resumed_from_step, "resumed_with_changes": resumed_with_changes,
                                "training_curve": training_curve(out / "metrics.jsonl")})
    _write_json(out / "result.json", result.to_dict())
    return result
