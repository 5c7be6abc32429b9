"""The quiet console (sqlfoundry/logs.py): library logs, warnings and prints go to the log file, the
person at the terminal sees say() lines and one progress bar; verbose keeps everything on the terminal."""

import logging
import sys
import warnings

import pytest

from sqlfoundry.logs import TrainingBar, quiet, say


def _noise() -> None:
    """What a training run's libraries do: a warning, INFO logs, a logger with its own console
    handler (as Ray and transformers attach), a print, a progress bar redrawn with carriage returns."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("FutureWarning-like noise", FutureWarning)
    logging.getLogger("bitsandbytes.cpu").warning("No module named 'kernels'")
    logging.getLogger("sqlfoundry.data").info("dropped 3 duplicates")
    print("{'loss': 1.25, 'grad_norm': 0.5}")
    sys.stderr.write("Map:   0%|   | 0/10\rMap: 100%|###| 10/10\n")


@pytest.fixture()
def library_logger():
    """A library logger that writes to the terminal's stderr itself and does not propagate. Its
    handler is attached on first use, inside the test: pytest swaps sys.stderr between fixture
    setup and the test body."""
    logger = logging.getLogger("ray.test_quiet")
    logger.propagate = False
    # Its own level: a session's ray.init(logging_level=ERROR) in another test sets the "ray" parent's.
    logger.setLevel(logging.INFO)

    def attach():
        logger.addHandler(logging.StreamHandler(sys.stderr))
        return logger

    yield attach
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def test_library_output_goes_to_the_file_and_say_to_the_console(tmp_path, capsys, library_logger):
    library_logger = library_logger()
    log_file = tmp_path / "run" / "train.log"
    with quiet(log_file):
        say("adapter saved to outputs/quickstart/adapter")
        _noise()
        library_logger.info("Started a local Ray instance.")
    console = capsys.readouterr()
    assert console.out == "adapter saved to outputs/quickstart/adapter\n"
    assert console.err == ""
    text = log_file.read_text()
    for expected in ("FutureWarning-like noise", "No module named 'kernels'", "dropped 3 duplicates",
                     "{'loss': 1.25, 'grad_norm': 0.5}", "Started a local Ray instance."):
        assert expected in text
    assert "Map: 100%|###| 10/10\n" in text and "Map:   0%" not in text  # the bar's last frame only
    assert "adapter saved to" not in text


def test_everything_is_restored_after_the_block(tmp_path, capsys, library_logger):
    library_logger = library_logger()
    root_handlers = logging.getLogger().handlers[:]
    late = logging.getLogger("imported.inside")  # a library imported inside the block
    late.propagate = False
    with quiet(tmp_path / "train.log"):
        late.addHandler(logging.StreamHandler(sys.stderr))
    assert logging.getLogger().handlers == root_handlers
    library_logger.warning("back on the console")
    late.warning("not into the closed file")
    print("plain print")
    console = capsys.readouterr()
    assert "back on the console" in console.err and console.out == "plain print\n"
    assert "not into the closed file" in console.err and "Logging error" not in console.err


def test_verbose_keeps_library_output_on_the_console_and_in_the_file(tmp_path, capsys, library_logger):
    library_logger = library_logger()
    log_file = tmp_path / "train.log"
    with quiet(log_file, verbose=True):
        say("one line")
        _noise()
        library_logger.info("Started a local Ray instance.")
    console = capsys.readouterr()
    both = console.out + console.err
    text = log_file.read_text()
    for expected in ("FutureWarning-like noise", "No module named 'kernels'", "dropped 3 duplicates",
                     "{'loss': 1.25, 'grad_norm': 0.5}", "Started a local Ray instance."):
        assert expected in both and expected in text
    assert "one line" in console.out


def test_training_bar_shows_the_data_line_eval_losses_and_one_bar(tmp_path, capsys):
    bar = TrainingBar()
    with quiet(tmp_path / "train.log"):
        bar({"event": "start", "step": 0, "max_steps": 4, "train_rows": 1058, "effective_batch": 8,
             "per_device": 8, "workers": 1, "accumulation": 1})
        for step in range(1, 5):
            bar({"event": "step", "step": step})
            bar({"event": "log", "step": step, "logs": {"loss": 1.0 / step}})
        bar({"event": "log", "step": 4, "logs": {"eval_loss": 0.125}})
        bar({"event": "end", "step": 4})
    console = capsys.readouterr()
    assert "training 4 steps on 1058 rows, effective batch 8 = 8 per device x 1 worker(s) x 1 accumulation" \
        in console.out
    assert "step 4: eval loss 0.1250" in console.out
    assert "4/4" in console.err and console.err.count("training") >= 1
    assert bar.bar is None


def test_train_cli_writes_its_log_file_and_refuses_promote_without_a_registry(tmp_path, monkeypatch, capsys):
    import sqlfoundry.training.ray_train as ray_train
    from sqlfoundry.cli import main
    from sqlfoundry.training.recipe import TrainResult

    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"data: {{source: 'synthetic://40'}}\noutput: {{dir: '{tmp_path / 'out'}'}}\n")
    assert main(["train", "--config", str(config_file), "--promote", "production"]) == 2
    assert "--promote needs output.push_to" in capsys.readouterr().err

    def remote(config, resume="check", progress=None):
        logging.getLogger("remote.worker").info("worker group started")  # as the workers' lines arrive
        progress({"event": "start", "step": 0, "max_steps": 2, "train_rows": 40, "effective_batch": 8,
                  "per_device": 8, "workers": 1, "accumulation": 1})
        return TrainResult(output_dir=config.output.dir, adapter_dir="", global_step=2, train_loss=None,
                           eval_loss=0.5, tokens_per_second=None, train_runtime_s=None)

    monkeypatch.setattr(ray_train, "train_with_ray", remote)
    assert main(["train", "--config", str(config_file)]) == 0
    console = capsys.readouterr()
    assert "training 2 steps on 40 rows" in console.out and "worker group started" not in console.out + console.err
    assert "worker group started" in (tmp_path / "out" / "train.log").read_text()
    assert main(["train", "--config", str(config_file), "--verbose"]) == 0
    assert "worker group started" in capsys.readouterr().err
