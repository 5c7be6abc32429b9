"""One Tune trial: the unchanged training recipe with a callback that reports each evaluation.

Trials are function trainables with per-trial resources, not Ray Train runs inside Tune: one trial's
model fits one device (QLoRA keeps a 7B base at ~5 GB), so data parallelism inside a trial would
only add a second layer of actors and their start-up cost (~30 s per run measured in
bench/results/ray_train_scaling.json); running more trials side by side uses the devices better.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from transformers import TrainerCallback

from sqlfoundry.config.schema import RunConfig

log = logging.getLogger(__name__)


def realistic_ex_rows(prepared, count: int) -> list[dict]:
    """The first `count` eval rows on realistic schemas (the evaluation's realistic view, names drawn
    from all eval rows): the schemas that matter, whether or not the run augments its data."""
    from sqlfoundry.data.augment import realistic_view

    if prepared.report.eval_view == "realistic":  # an augmented run's eval rows already carry the view
        return prepared.eval[:count]
    return realistic_view(prepared.eval[:count], prepared.eval)[0]


def execution_accuracy(model, tokenizer, rows: list[dict], system_prompt: str, max_new_tokens: int) -> float | None:
    """EX on schema-only rows (databases synthesized from the CREATE TABLE context), over scorable rows."""
    from sqlfoundry.evaluation.scoring import score_schema_only
    from sqlfoundry.modeling.generation import generate_sql

    generations = generate_sql(model, tokenizer, [r["context"] for r in rows], [r["question"] for r in rows],
                               system_prompt, max_new_tokens=max_new_tokens)
    verdicts = [score_schema_only(r["context"], r["answer"], g.sql).ex for r, g in zip(rows, generations)]
    scored = [v for v in verdicts if v is not None]
    return sum(scored) / len(scored) if scored else None


class TuneReportCallback(TrainerCallback):
    """Reports every evaluation to Tune together with the checkpoint saved at that step (the recipe
    saves at every evaluation in a trial), so the scheduler sees the metric and a restored search
    resumes the trial from there."""

    def __init__(self, config: RunConfig, ex_rows: list[dict]):
        self.config = config
        self.ex_rows = ex_rows
        self.last: dict = {}

    def on_evaluate(self, args, state, control, metrics=None, model=None, processing_class=None, **kwargs):
        self.last = {"step": state.global_step, "eval_loss": (metrics or {}).get("eval_loss")}
        if self.ex_rows:
            self.last["execution_accuracy"] = execution_accuracy(
                model, processing_class, self.ex_rows, self.config.data.system_prompt,
                self.config.training.max_new_tokens)

    def on_save(self, args, state, control, **kwargs):
        from ray import tune

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.last.get("step") == state.global_step and folder.is_dir():
            tune.report(dict(self.last, completed=False), checkpoint=tune.Checkpoint.from_directory(str(folder)))


def run_trial(params: dict, base: dict) -> None:
    """The Tune function trainable."""
    import ray
    from ray import tune

    from sqlfoundry.data.prepare import prepare_data
    from sqlfoundry.training.recipe import train
    from sqlfoundry.tuning.space import trial_config

    started = time.perf_counter()
    config = trial_config(RunConfig.model_validate(base), params, Path(tune.get_context().get_trial_dir()) / "run")
    ex_rows = []
    if config.tune.metric == "execution_accuracy":
        ex_rows = realistic_ex_rows(prepare_data(config.data), config.tune.ex_eval_rows)
    callback = TuneReportCallback(config, ex_rows)
    threads = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        result = train(config, extra_callbacks=[callback], threads=threads)
    else:
        with checkpoint.as_directory() as folder:
            log.info("resuming trial from %s", folder)
            result = train(config, resume_from_checkpoint=folder, extra_callbacks=[callback], threads=threads)
    final = dict(callback.last, step=result.global_step, eval_loss=result.eval_loss, completed=True,
                 tokens_per_second=result.tokens_per_second, trial_wall_s=time.perf_counter() - started,
                 data_fingerprint=result.data_report.get("fingerprint"))
    tune.report(final, checkpoint=tune.Checkpoint.from_directory(result.adapter_dir))
