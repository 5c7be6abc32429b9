"""What TRL really trains on, checked through the recipe itself (`train()` with a callback that sees
the trainer's own dataloader and model): labels are -100 on every prompt token and on no SQL token,
the prompt ids equal the ids the serving path feeds the model for the same row, and NEFTune's noise
is added inside a real SFTTrainer training step (and not at evaluation)."""

import torch
from transformers import TrainerCallback

from sqlfoundry.data.formatting import render_prompt
from sqlfoundry.data.prepare import prepare_data
from sqlfoundry.modeling.loading import load_tokenizer
from sqlfoundry.training import train
from test_training import tiny_config

ALPHA = 5.0


class Probe(TrainerCallback):
    """Takes the first batch of the trainer's own dataloader, and records the embedding output of
    every forward (the hook is registered after NEFTune's, so it sees the noised embeddings)."""

    def __init__(self):
        self.batch = None
        self.forwards = []  # (training?, input_ids, embedding output)

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        self.batch = next(iter(train_dataloader))
        model.get_input_embeddings().register_forward_hook(
            lambda module, inputs, output: self.forwards.append((module.training, inputs[0].detach().clone(),
                                                                 output.detach().clone())))


def test_trl_trains_on_the_served_prompt_with_sql_only_labels_and_neftune(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, tmp_path / "out", "training.max_steps=1", "training.packing=off",
                         f"neftune.alpha={ALPHA}", "training.final_generation_samples=0")
    probe = Probe()
    train(config, extra_callbacks=[probe])

    tokenizer = load_tokenizer(config.model)
    rows = {render_prompt(tokenizer, r["context"], r["question"], config.data.system_prompt): r
            for r in prepare_data(config.data, progress=False).train}
    input_ids, labels = probe.batch["input_ids"], probe.batch["labels"]
    assert len(input_ids) == config.training.per_device_batch_size
    for ids, row_labels in zip(input_ids.tolist(), labels.tolist()):
        first_trained = next(i for i, label in enumerate(row_labels) if label != -100)
        prompt_text = tokenizer.decode(ids[:first_trained])
        row = rows[prompt_text]  # the prompt TRL built is the platform's prompt for a real train row
        # Exactly the ids serving tokenizes for this row (generate_batch: add_special_tokens=False).
        served = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        assert ids[:first_trained] == served
        trained = [label for label in row_labels[first_trained:] if label != -100]
        assert trained == ids[first_trained:first_trained + len(trained)]  # no SQL token masked out
        assert tokenizer.decode(trained).strip().startswith(row["answer"])

    training = [(ids, out) for is_training, ids, out in probe.forwards if is_training]
    evaluating = [(ids, out) for is_training, ids, out in probe.forwards if not is_training]
    assert training and evaluating
    ids, noised = training[0]
    weights = _embedding_weights(tiny_model_dir)
    noise = noised - weights[ids]
    bound = ALPHA / weights.shape[1] ** 0.5  # the largest scale, for a sequence of length 1
    assert noise.abs().max() > 0 and noise.abs().max() <= bound  # noise really added in the step
    eval_ids, clean = evaluating[-1]
    assert torch.equal(clean, weights[eval_ids])  # and never at evaluation


def _embedding_weights(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).get_input_embeddings().weight.detach()


def test_rows_longer_than_max_length_are_dropped_and_counted_not_truncated(tiny_model_dir):
    from sqlfoundry.data.prepare import DataReport, PreparedData, fingerprint
    from sqlfoundry.training.recipe import drop_too_long

    short = {"question": "How many heads?", "context": "CREATE TABLE head (age INTEGER)", "answer": "SELECT COUNT(*) FROM head"}
    wide = dict(short, context="CREATE TABLE head (" + ", ".join(f"column_{i} INTEGER" for i in range(80)) + ")")
    prepared = PreparedData(train=[short, wide, short], eval=[short, wide], report=DataReport(source="rows"))
    tokenizer = load_tokenizer(tiny_config(tiny_model_dir, "out").model)
    drop_too_long(prepared, tokenizer, "SCHEMA:\n{schema}", max_length=200)
    assert prepared.train == [short, short] and prepared.eval == [short]
    assert prepared.report.dropped == {"too_long_train": 1, "too_long_eval": 1}
    assert (prepared.report.train_rows, prepared.report.eval_rows) == (2, 1)
    assert prepared.report.fingerprint == fingerprint([short, short], [short])
