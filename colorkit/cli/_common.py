"""What the ``colorkit`` subcommands share: errors and exit codes, help formatting, model folders, torch
threads, and the terminal side of a run (progress bar, signals, warnings). Standard library only at import."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from .. import modelcard

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """A problem the command reports as one message and an exit code (2: usage / refusal, 1: failure)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def err(msg: str) -> None:
    print(f"colorkit: {msg}", file=sys.stderr, flush=True)


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the descriptions' and examples' line breaks; show the defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, False, True, argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


def subparser(sub: Any, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """The subcommand ``name``'s parser, with colorkit's help formatting."""
    return sub.add_parser(name, formatter_class=Formatter, help=help, description=description.rstrip("\n"),
                          epilog=epilog.rstrip("\n"))


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads for the network (default: every core, or OMP_NUM_THREADS)")


def add_precision(p: argparse.ArgumentParser) -> None:
    """``--precision auto|bf16|fp32`` (default auto), for the commands that run the network."""
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="network precision: auto is bf16 (+ channels_last) where the device has fast bf16 (a CUDA "
                        "GPU that supports it, a CPU with AMX or AVX-512 bf16), else fp32 (default: auto)")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def is_within(path: Path, folder: Path) -> bool:
    """``path`` equals ``folder`` or lies inside it (both resolved)."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------------------------
# models, devices, threads


def model_path(arg: str | None) -> Path:
    """``--model`` / ``MODEL``: the folder given, or the starter model (looked up now, so tests can move it)."""
    return Path(arg) if arg else modelcard.STARTER_MODEL


def check_model_dir(path: Path, what: str = "--model") -> Path:
    """``path`` if it is a model folder, else CLIError (exit 2) saying what is missing."""
    if path == modelcard.STARTER_MODEL and not (path / modelcard.CONFIG_FILE).is_file():
        raise CLIError(
            f"the starter model is not installed ({path} has no config.json); pass {what} DIR "
            "with a model folder, or train one with `colorkit train PHOTOS -o MODEL`"
        )
    try:
        return modelcard.check_model_dir(path)
    except FileNotFoundError as e:
        raise CLIError(str(e)) from None


def load_model(path: Path, device: str = "cpu", precision: str = "fp32") -> Any:
    """The :class:`~colorkit.Colorizer` in ``path`` on ``device`` in ``precision`` (``auto``, ``bf16``,
    ``fp32``; resolved for that device) (CLIError when it cannot be loaded)."""
    from ..learner import load_colorizer

    check_model_dir(path)
    dev = resolve_device(device)
    try:
        clr = load_colorizer(path, precision=precision)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise CLIError(f"{path}: cannot load the model ({e})", EXIT_FAILED) from None
    return clr.to(dev)


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CLIError("--device cuda: no CUDA device is available (use --device cpu)")
    return device


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Use ``n`` torch threads (default: OMP_NUM_THREADS when set, else every core this process may use)."""
    import torch

    old = torch.get_num_threads()
    if n is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n = int(env) if env.isdigit() and int(env) > 0 else _cpu_count()
    torch.set_num_threads(max(1, n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------------
# the terminal side of a run


@contextlib.contextmanager
def plain_warnings() -> Iterator[None]:
    """Show warnings as ``colorkit: warning: ...`` lines (no source line) while a command runs."""
    old = warnings.showwarning
    seen: set[str] = set()

    def show(message: Any, category: Any, filename: str, lineno: int, file: TextIO | None = None,
             line: str | None = None) -> None:
        text = str(message)
        text = text[len("colorkit: "):] if text.startswith("colorkit: ") else text
        if text not in seen:  # e.g. the same skipped files, once per training stage
            seen.add(text)
            print(f"colorkit: warning: {text}", file=file or sys.stderr, flush=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = old


class ProgressBar:
    """A progress line on ``stream``: count, bar, rate and ETA.

    On a terminal it redraws in place (at most 10 times a second); otherwise it prints a line
    every ``log_every`` seconds and at the end, so logs stay readable.
    """

    def __init__(self, total: int, label: str = "colorizing", stream: TextIO | None = None,
                 enabled: bool = True, log_every: float = 10.0) -> None:
        self.total, self.label, self.n = total, label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every = log_every
        self.t0 = time.monotonic()
        self._last = self.t0  # non-terminal: the first line comes after log_every seconds
        self._width = 0
        self._printed_n = -1

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        rate = self.n / elapsed if elapsed > 0 and self.n else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else None
        frac = self.n / self.total if self.total else 1.0
        filled = int(frac * 24)
        return (f"{self.label} {self.n}/{self.total} [{'#' * filled}{'.' * (24 - filled)}] {frac:4.0%} "
                f"{rate:.2f} img/s, elapsed {fmt_duration(elapsed)}, ETA {fmt_duration(eta)}")

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self._last >= 0.1 or self.n == self.total:
                text = self.line()
                self.stream.write("\r" + text.ljust(self._width))
                self.stream.flush()
                self._width, self._last = len(text), now
        elif (force or now - self._last >= self.log_every) and self.n != self._printed_n:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last, self._printed_n = now, self.n

    def update(self, k: int = 1) -> None:
        self.n += k
        self._draw()

    def message(self, text: str) -> None:
        """Print ``text`` on its own line (to stderr) without garbling the bar."""
        if self.enabled and self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
        print(text, file=self.stream, flush=True)
        if self.enabled and self.tty and self._width:
            self._draw(force=True)

    def close(self) -> None:
        if not self.enabled:
            return
        self._draw(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class _SignalScope:
    """Installs ``self._handle`` for SIGINT and SIGTERM while in the ``with`` block (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204 - returns the subclass instance
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


class StopOnSignal(_SignalScope):
    """SIGINT / SIGTERM: the first signal asks the run to stop after the photos in flight (``stop_requested``,
    for the pipeline's ``should_stop``); a second one raises KeyboardInterrupt at once."""

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\ncolorkit: {signal.Signals(signum).name} received: finishing the files in progress, then "
              "stopping (send it again to abort at once)", file=sys.stderr, flush=True)

    def stop_requested(self) -> bool:
        return self.signum is not None


class RaiseOnSignal(_SignalScope):
    """During training: SIGINT and SIGTERM both raise KeyboardInterrupt (checkpoints are atomic), and the
    signal is remembered for the exit code."""

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        raise KeyboardInterrupt
