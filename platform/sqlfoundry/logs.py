"""The quiet console of `sqlfoundry train` and `serve`: a few plain lines and one progress bar on the
terminal, everything else in a log file.

Inside `quiet(log_file)`, every logger (INFO; DEBUG with verbose), every warning
(`logging.captureWarnings`) and whatever is printed to sys.stdout / sys.stderr (Ray's lines from
its workers, the Trainer's per-step dicts, library progress bars) go to the file; `say()` and the
TrainingBar write to the terminal as it was on entry. `verbose=True` keeps it all on the terminal
too (and in the file). Writes by native code straight to file descriptors 1 and 2 are not caught.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_terminal = None  # (stdout, stderr) as they were when quiet() began, while it is active


def terminal() -> tuple:
    """(stdout, stderr) of the person at the terminal, inside quiet() or not."""
    return _terminal or (sys.stdout, sys.stderr)


def say(text: str = "") -> None:
    """One line for the person at the terminal."""
    stream = terminal()[0]
    stream.write(text + "\n")
    stream.flush()


class _LogLines(io.TextIOBase):
    """A text stream into the log file, one line per line as a terminal would show it: carriage-return
    redraws (progress bars) keep their last state, colour codes are dropped."""

    encoding, errors = "utf-8", "strict"  # what libraries that inspect sys.stdout expect to find

    def __init__(self, file):
        self.file, self.partial, self.lock = file, "", threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            self.partial += text
            *lines, self.partial = self.partial.split("\n")
            for line in lines:
                self.file.write(self._shown(line) + "\n")
            self.file.flush()
        return len(text)

    @staticmethod
    def _shown(line: str) -> str:
        frames = [frame for frame in _ANSI.sub("", line).split("\r") if frame.strip()]
        return frames[-1] if frames else ""

    def close_partial(self) -> None:
        if self.partial.strip():
            self.write("\n")

    def fileno(self) -> int:  # subprocesses and faulthandler given sys.stderr write into the file too
        return self.file.fileno()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


class _Both(io.TextIOBase):
    """verbose: each write to the terminal and to the file."""

    encoding, errors = "utf-8", "strict"

    def __init__(self, terminal, file_lines: _LogLines):
        self.terminal, self.file_lines = terminal, file_lines

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.file_lines.write(text)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.terminal.isatty()


def _handlers_on(streams) -> list[logging.StreamHandler]:
    """Every handler of any logger that writes to one of `streams` (libraries such as Ray and
    transformers attach their own, with propagation off). Handlers whose stream is always the
    current sys.stderr (logging.lastResort) follow the swap by themselves."""
    loggers = [logging.getLogger()] + [obj for obj in logging.Logger.manager.loggerDict.values()
                                       if isinstance(obj, logging.Logger)]
    return [handler for lg in loggers for handler in lg.handlers
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            and not isinstance(getattr(type(handler), "stream", None), property)
            and any(handler.stream is stream for stream in streams)]


@contextmanager
def quiet(log_file: str | Path, verbose: bool = False) -> Iterator[Path]:
    """See the module docstring. Restores loggers, warnings and sys.stdout/sys.stderr on exit."""
    global _terminal
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    file = path.open("a", encoding="utf-8")
    lines = _LogLines(file)
    out, err = sys.stdout, sys.stderr
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    retargeted = [(handler, handler.stream) for handler in _handlers_on((out, err, sys.__stdout__, sys.__stderr__))]
    root.handlers = [logging.StreamHandler(lines)] + ([logging.StreamHandler(err)] if verbose else [])
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler, stream in retargeted:  # a library's own console handler now writes to the file
        handler.setStream(_Both(stream, lines) if verbose else lines)
    logging.captureWarnings(True)
    ours = (_Both(out, lines), _Both(err, lines)) if verbose else (lines, lines)
    sys.stdout, sys.stderr = ours
    previous_terminal, _terminal = _terminal, (out, err)
    try:
        yield path
    finally:
        sys.stdout, sys.stderr = out, err
        _terminal = previous_terminal
        logging.captureWarnings(False)
        for handler, stream in retargeted:
            handler.setStream(stream)
        # handlers that libraries created inside the block (Ray's, imported late) hold our streams:
        # after it they write to the terminal again, never to the closed file
        for handler in _handlers_on((lines, *ours)):
            handler.setStream(err)
        root.handlers, level = saved_root
        root.setLevel(level)
        lines.close_partial()
        file.close()


class TrainingBar:
    """One progress bar for a training run, fed the events of training/progress.py (possibly from
    another thread): a line with the data and batch before it, eval losses as lines above it."""

    def __init__(self):
        self.bar = None

    def __call__(self, event: dict) -> None:
        from tqdm.auto import tqdm

        kind = event.get("event")
        if kind == "start":
            self.close()  # a restarted worker starts again from its checkpoint
            say(f"training {event['max_steps']} steps on {event['train_rows']} rows, "
                f"effective batch {event['effective_batch']} = {event['per_device']} per device x "
                f"{event['workers']} worker(s) x {event['accumulation']} accumulation")
            self.bar = tqdm(total=event["max_steps"], initial=event["step"], unit="step", desc="training",
                            file=terminal()[1], dynamic_ncols=True, disable=False)
        elif self.bar is None:
            return
        elif kind == "step":
            self.bar.update(max(0, event["step"] - self.bar.n))
        elif kind == "log":
            logs = event.get("logs", {})
            if "loss" in logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.4f}")
            if "eval_loss" in logs:
                self.bar.write(f"step {event['step']}: eval loss {logs['eval_loss']:.4f}", file=terminal()[0])
        elif kind == "end":
            self.close()
            say("final evaluation, saving the adapter, the generation check on held-out rows ...")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
