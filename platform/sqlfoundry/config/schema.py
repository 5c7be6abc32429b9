"""The run configuration as typed, validated dataclasses (pydantic v2).

Every section forbids unknown keys, so a typo such as `training.max_stepz` fails before any work
starts instead of being silently ignored. Ranges are checked here, once; the rest of the code
trusts a `RunConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_SYSTEM_PROMPT = (
    "You are an exceptionally intelligent SQL query translator that consistently delivers accurate "
    "and reliable responses to user instructions. Given the database schema below, answer the "
    "user's question with a single SQLite query and nothing else.\n\nSCHEMA:\n{schema}"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    # A Hub id, a local folder, or a builtin alias (see sqlfoundry.modeling.builtin).
    name_or_path: str = "smollm2-135m-instruct"
    revision: str | None = None
    trust_remote_code: bool = False
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # Jinja chat template to use instead of the tokenizer's own (or when it has none).
    chat_template: str | None = None


class QuantizationConfig(_Section):
    mode: Literal["none", "nf4"] = "none"
    double_quant: bool = True
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


class LoraConfig(_Section):
    r: int = Field(8, gt=0)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one module, e.g. [q_proj, v_proj]")
        return value


class LoraPlusConfig(_Section):
    # Learning rate of LoRA B = learning_rate * ratio; ratio 1 is plain LoRA.
    ratio: float = Field(16.0, ge=1)
    embedding_lr: float = Field(1e-6, ge=0)


class NEFTuneConfig(_Section):
    # Noise alpha of NEFTune (Jain et al. 2023); 0 disables it.
    alpha: float = Field(5.0, ge=0)


class ColumnMapping(_Section):
    question: str = "question"
    context: str = "context"
    answer: str = "answer"


class AugmentConfig(_Section):
    """Schema augmentation of training rows (sqlfoundry.data.augment). sql-create-context's CREATE TABLE
    holds exactly the columns the gold SQL uses; a model trained on it learns to use every column it
    is given and fails on real, wider schemas. Augmented rows get the other known columns of their
    table, distractor columns and tables, and key lines; the gold SQL is unchanged (checked)."""
    enabled: bool = False
    # Share of training rows augmented; the rest keep their narrow schema.
    probability: float = Field(0.8, ge=0, le=1)
    # A table name that recurs across rows (Spider's `singer`, `department`) gets the columns seen
    # for it in other rows; WikiSQL's generic table_name_N tables are never merged.
    fuller_tables: bool = True
    # Distractor columns per table: a count k, or [min, max] for a count drawn per table.
    distractor_columns: tuple[int, int] = (1, 4)
    # Tables of other rows added to the schema: a count m, or [min, max].
    distractor_tables: tuple[int, int] = (0, 2)
    # PRIMARY KEY for id-like columns, FOREIGN KEY ... REFERENCES for join / <table>_id columns.
    key_lines: bool = True
    # Added columns stop at this width (the row's own columns are always kept): prompts stay
    # within training.max_length.
    max_table_columns: int = Field(12, ge=1, le=64)
    # Synthesized databases on which the gold must return the same rows as on the original schema.
    verify_databases: int = Field(2, ge=1, le=8)
    seed: int = 0

    @field_validator("distractor_columns", "distractor_tables", mode="before")
    @classmethod
    def _count_or_range(cls, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return (value, value)
        return value

    @field_validator("distractor_columns", "distractor_tables")
    @classmethod
    def _ordered_range(cls, value: tuple[int, int], info) -> tuple[int, int]:
        limit = 32 if info.field_name == "distractor_columns" else 8
        low, high = value
        if not 0 <= low <= high <= limit:
            raise ValueError(f"must be a count or [min, max] with 0 <= min <= max <= {limit}, got {list(value)}")
        return value


class DataConfig(_Section):
    # A Hub dataset id, a local JSON/JSONL/Parquet file or folder, or `synthetic://N` (N generated rows).
    source: str = "b-mc2/sql-create-context"
    hub_split: str = "train"
    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    # Rows drawn (after validation and dedup) before the split; None keeps them all.
    sample_size: int | None = Field(None, gt=0)
    # Eval rows: a count (>= 1) or a fraction (< 1) of the sampled rows.
    eval_size: float = Field(0.1, gt=0)
    seed: int = 315
    # Eval/benchmark files whose questions (or schema + gold SQL) must not be trained on.
    exclude: list[str] = Field(default_factory=list)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    # Sampling weight of training rows by origin (sqlfoundry.data.mix): `wikisql` rows (every table a
    # WikiSQL table_name_N / table_<id>) and `named` rows (Spider-derived, often multi-table). Weight w
    # keeps each row floor(w) times plus once more with probability w - floor(w); unnamed origins keep 1.
    mix: dict[Literal["named", "wikisql"], float] = Field(default_factory=dict)

    @field_validator("mix")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in value.items() if not 0 <= w <= 100}
        if bad:
            raise ValueError(f"weights must be between 0 and 100, got {bad}")
        if value and len(value) == 2 and not any(value.values()):
            raise ValueError("every weight is 0: no training rows would be left")
        return value

    @field_validator("system_prompt")
    @classmethod
    def _has_schema_slot(cls, value: str) -> str:
        if "{schema}" not in value:
            raise ValueError("must contain the placeholder {schema}, where the CREATE TABLE statements go")
        return value

    @field_validator("eval_size")
    @classmethod
    def _count_or_fraction(cls, value: float) -> float:
        if value >= 1 and value != int(value):
            raise ValueError("must be a whole row count (>= 1) or a fraction below 1")
        return value


class TrainingConfig(_Section):
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    per_device_batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    max_steps: int = Field(100, gt=0)
    eval_steps: int = Field(50, gt=0)
    save_steps: int = Field(50, gt=0)
    save_total_limit: int | None = Field(2, gt=0)
    # Stop after this many evaluations without a better eval loss; None disables early stopping.
    early_stopping_patience: int | None = Field(None, gt=0)
    max_length: int = Field(1024, gt=0)
    # Padding-free best-fit packing. "auto" packs only with flash attention: other attention
    # kernels (sdpa, eager) attend over the whole flattened batch with a block mask, which costs
    # quadratic time and was 5x slower per token than padded batches on CPU (bench/train_throughput.py).
    packing: Literal["auto", "on", "off"] = "auto"
    gradient_checkpointing: bool = False
    # bf16 autocast: "auto" = on when the device supports it (CUDA bf16, or a CPU with avx512_bf16).
    bf16: Literal["auto", "on", "off"] = "auto"
    logging_steps: int = Field(10, gt=0)
    report_to: list[Literal["wandb", "tensorboard"]] = Field(default_factory=list)
    seed: int = 315
    # Torch CPU threads; None = the CPUs this process may run on.
    threads: int | None = Field(None, gt=0)
    # After training, generate SQL for this many eval rows and report exact match (0 skips it).
    final_generation_samples: int = Field(0, ge=0)
    max_new_tokens: int = Field(128, gt=0)

    @field_validator("bf16", "packing", mode="before")
    @classmethod
    def _yaml_booleans(cls, value):
        # YAML reads unquoted on/off/true/false as booleans; accept them as "on"/"off".
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _save_matches_eval(self) -> "TrainingConfig":
        if self.early_stopping_patience is not None and self.save_steps % self.eval_steps != 0:
            raise ValueError(
                "early stopping keeps the best checkpoint, so training.save_steps "
                f"({self.save_steps}) must be a multiple of training.eval_steps ({self.eval_steps})"
            )
        return self


class OutputConfig(_Section):
    dir: str = "outputs/run"
    # Refuse to write into a folder that already holds a finished adapter unless this is set.
    overwrite: bool = False
    # Adapter registry root (a folder, file:// or s3://bucket/prefix): the finished adapter is pushed
    # there as a new version of `adapter_name`. None keeps it in `dir` only.
    push_to: str | None = None
    adapter_name: str = "sql-adapter"


class RayConfig(_Section):
    num_workers: int = Field(1, gt=0)
    use_gpu: bool = False
    # Per worker, e.g. {CPU: 8, GPU: 1}; CPU also sets the torch threads of each worker.
    resources_per_worker: dict[str, float] = Field(default_factory=lambda: {"CPU": 1})
    accelerator_type: str | None = None  # e.g. A100: workers only land on nodes with that GPU
    # Where Ray Train keeps checkpoints and run state: a folder or s3://bucket/prefix.
    storage_path: str = "outputs/ray"
    # Same run_name + storage_path = resume from the latest checkpoint. None: the output folder's name.
    run_name: str | None = None
    checkpoints_to_keep: int = Field(2, gt=0)
    # Worker failures Ray Train recovers from (restart from the last checkpoint); -1 = unlimited.
    max_failures: int = Field(0, ge=-1)
    # A running cluster (ray://... or auto); None = RAY_ADDRESS if set, else an embedded local Ray.
    address: str | None = None

    @model_validator(mode="after")
    def _gpu_resources(self) -> "RayConfig":
        if self.use_gpu and self.resources_per_worker.get("GPU", 1) <= 0:
            raise ValueError("ray.use_gpu=true needs resources_per_worker.GPU > 0 (or leave it out)")
        return self


class SearchDimension(_Section):
    # grid: every value, crossed with the other grid dimensions; choice: one value drawn per sample;
    # uniform / loguniform: a float drawn between low and high.
    sample: Literal["grid", "choice", "uniform", "loguniform"] = "grid"
    values: list[float] | None = None
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _complete(self) -> "SearchDimension":
        if self.sample in ("grid", "choice") and not self.values:
            raise ValueError(f"sample: {self.sample} needs a non-empty `values` list")
        if self.sample in ("uniform", "loguniform"):
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"sample: {self.sample} needs low < high")
            if self.sample == "loguniform" and self.low <= 0:
                raise ValueError("sample: loguniform needs low > 0")
        return self


def _default_search_space() -> dict[str, SearchDimension]:
    return {
        "loraplus.ratio": SearchDimension(values=[1, 2, 4, 8, 16, 32]),
        "training.learning_rate": SearchDimension(values=[1e-4, 2e-4]),
    }


class TuneConfig(_Section):
    # Dotted config keys -> how to search them. Each trial is `sqlfoundry train` with those values.
    search_space: dict[str, SearchDimension] = Field(default_factory=_default_search_space)
    # Repeats of the whole grid (grid dimensions) or draws (choice/uniform/loguniform).
    num_samples: int = Field(1, gt=0)
    max_concurrent_trials: int | None = Field(None, gt=0)
    # Resources of one trial, e.g. {CPU: 8, GPU: 1}; CPU also sets the trial's torch threads.
    resources_per_trial: dict[str, float] = Field(default_factory=lambda: {"CPU": 1})
    accelerator_type: str | None = None
    # What "best" means: eval loss (lower) or execution accuracy on `ex_eval_rows` eval rows (higher),
    # both measured at every evaluation (training.eval_steps) and fed to the scheduler.
    metric: Literal["eval_loss", "execution_accuracy"] = "eval_loss"
    ex_eval_rows: int = Field(32, gt=0)
    # ASHA stops trials whose metric is in the worse part of those that reached the same evaluation.
    scheduler: Literal["asha", "none"] = "asha"
    grace_period: int = Field(1, gt=0)  # evaluations every trial gets before it may be stopped
    reduction_factor: float = Field(2, gt=1)
    # Same run_name + ray.storage_path = resume the interrupted search. None: "tune-" + output dir name.
    run_name: str | None = None

    @field_validator("search_space")
    @classmethod
    def _non_empty_space(cls, value: dict) -> dict:
        if not value:
            raise ValueError("must name at least one key to search, e.g. loraplus.ratio")
        return value


class StrategyConfig(_Section):
    """How an answer is made from the model (sqlfoundry.answering), the same in generate, eval and
    serve. Everything off (the defaults) is one greedy decode, exactly as without this section."""
    # Completions per question: the greedy one plus candidates - 1 sampled, in one batched generate;
    # more than 1 executes the checked ones and votes on their results.
    candidates: int = Field(1, ge=1, le=16)
    # The most a request may ask for (serving's /v1/sql `candidates`).
    max_candidates: int = Field(8, ge=1, le=16)
    temperature: float = Field(0.7, gt=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int = 0  # of the sampled candidates
    # Solved examples retrieved (BM25 on question + schema identifiers) into the prompt.
    few_shot_k: int = Field(0, ge=0, le=8)
    # JSON/JSONL rows with question, context, answer: the examples retrieval draws from. Unset: the
    # adapter's own examples.jsonl (its training rows and any added with `sqlfoundry examples add`).
    examples: str | None = None
    # Drop tables and columns unrelated to the question when the schema has more than
    # prune_min_columns columns (keys and join columns of kept tables, and named tables, stay).
    prune: bool = False
    prune_min_columns: int = Field(16, ge=1)
    # Synthesized databases each candidate runs on, and the time limit per query.
    databases: int = Field(3, ge=1, le=8)
    timeout_s: float = Field(1.0, gt=0, le=30)
    # One more greedy decode with the failing SQL and its error in the prompt when no candidate survives.
    repair: bool = False
    # Synthesized database sets kept per process (LRU).
    cache_size: int = Field(256, ge=0, le=65536)

    @model_validator(mode="after")
    def _consistent(self) -> "StrategyConfig":
        if self.candidates > self.max_candidates:
            raise ValueError(f"candidates ({self.candidates}) must not exceed max_candidates ({self.max_candidates})")
        return self


class RunConfig(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    loraplus: LoraPlusConfig = Field(default_factory=LoraPlusConfig)
    neftune: NEFTuneConfig = Field(default_factory=NEFTuneConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    # Validated with the run config; `sqlfoundry eval`/`generate` take the same keys as flags and serving
    # as args.strategy. Training reads only few_shot_k: each training prompt then shows that many
    # examples retrieved from the other training rows (never strategy.examples), and the adapter's
    # metadata records it. The other keys are how answers are made and do not change training.
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
