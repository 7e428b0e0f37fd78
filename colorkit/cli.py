"""The ``colorkit`` command line: ``colorize``, ``train``, ``evaluate``, ``info`` and ``demo``.

``main(argv)`` parses the arguments and returns the exit code: 0 success, 1 some files or a step
failed (the rest completed), 2 usage errors and refusals (nothing was done), 130 / 143 stopped by
SIGINT / SIGTERM (finished files are complete; run the same command again to go on).

Heavy imports (torch, fastai, the colorkit modules that need them) happen inside the command
functions, so building the parser and printing help imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DEFAULT_MODEL", "SAMPLES_DIR", "ColorizeJob", "CLIError", "build_parser", "main", "plan_colorize"]

DEFAULT_MODEL: Path = Path(__file__).resolve().parent / "weights" / "starter"  # = learner.STARTER_MODEL
"""The starter model shipped in the package; every ``--model`` defaults to it."""

SAMPLES_DIR: Path = Path(__file__).resolve().parent / "samples"
"""Where ``colorkit demo`` finds its sample list (``samples.json``)."""

FAILURES_FILE = "colorkit-failures.txt"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_TEMP_MARK = ".tmp-"  # io.save_image writes ".{name}.tmp-<hex>" next to the final file


class CLIError(Exception):
    """A problem the command reports as one message and an exit code (2: usage / refusal, 1: failure)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------------------------------
# small helpers


def _err(msg: str) -> None:
    print(f"colorkit: {msg}", file=sys.stderr, flush=True)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 6:
        return f"[{len(v)} items]"
    return str(v)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts -> ``[("a.b", value), ...]`` in insertion order."""
    if not isinstance(d, dict):
        return [(prefix or "value", d)]
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        rows.extend(_flatten(v, key) if isinstance(v, dict) else [(key, v)])
    return rows


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _is_within(path: Path, folder: Path) -> bool:
    """``path`` equals ``folder`` or lies inside it (both resolved)."""
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def _glob_base(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard: ``photos/*/a*.jpg`` -> ``photos``."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for p in parts[:-1]:
        if _has_magic(p):
            break
        fixed.append(p)
    return Path(*fixed) if fixed else Path(".")


@contextlib.contextmanager
def _plain_warnings() -> Iterator[None]:
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


class _Progress:
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
                f"{rate:.2f} img/s, elapsed {_fmt_duration(elapsed)}, ETA {_fmt_duration(eta)}")

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

    _old: dict[int, Any]

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


class _StopFlag(_SignalScope):
    """SIGINT / SIGTERM handler: the first signal asks the loop to stop after the current image; a second
    one raises KeyboardInterrupt at once. Outside the main thread nothing is installed."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        name = signal.Signals(signum).name
        print(f"\ncolorkit: {name} received: finishing the files in progress, then stopping "
              "(send it again to abort at once)", file=sys.stderr, flush=True)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


class _RaiseOnSignal(_SignalScope):
    """During training: SIGINT and SIGTERM both raise KeyboardInterrupt (checkpoints are atomic), and the
    signal is remembered for the exit code. Outside the main thread nothing is installed."""

    def __init__(self) -> None:
        self.signum: int = signal.SIGINT
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        raise KeyboardInterrupt



def _check_model_dir(path: Path, what: str = "--model") -> Path:
    if path == DEFAULT_MODEL and not (path / "config.json").is_file():
        raise CLIError(
            f"the starter model is not installed ({DEFAULT_MODEL} has no config.json); pass {what} DIR "
            "with a model folder, or train one with `colorkit train PHOTOS -o MODEL`"
        )
    if not path.is_dir():
        raise CLIError(f"{path}: no such model folder (a colorkit model is a folder with config.json "
                       "and model.safetensors, as written by `colorkit train`)")
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise CLIError(f"{path}: not a colorkit model folder ({name} is missing)")
    return path


def _load_model(path: Path, device: str = "cpu") -> Any:
    from .learner import load_colorizer

    _check_model_dir(path)
    try:
        clr = load_colorizer(path)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise CLIError(f"{path}: cannot load the model ({e})", EXIT_FAILED) from None
    return clr.to(_resolve_device(device))


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CLIError("--device cuda: no CUDA device is available (use --device cpu)")
    return device


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[int]:
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
# colorize: planning


@dataclass(frozen=True)
class ColorizeJob:
    """One input image and the output path it is written to."""

    src: Path
    dst: Path


def plan_colorize(
    inputs: Sequence[str], out: str | os.PathLike, recursive: bool = False
) -> list[ColorizeJob]:
    """Map ``inputs`` (files, folders, glob patterns) to output paths under ``out``, or raise CLIError.

    A folder's images keep their path relative to that folder (sub-folders with ``recursive``); a
    glob's matches keep their path relative to the pattern's leading fixed folders; a single file goes
    straight into ``out``. Refuses (CLIError, exit 2) when an output path would be an input file, when
    two inputs map to the same output, and when ``out`` lies inside a folder that is read recursively
    (the outputs would become inputs on the next run).
    """
    from .io import find_images

    out = Path(out)
    out_res = out.resolve()
    jobs: list[ColorizeJob] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            if recursive and _is_within(out_res, p.resolve()):
                raise CLIError(
                    f"the output folder {out} is inside the input folder {p} and --recursive would read "
                    f"its outputs back as inputs; choose an output folder outside {p}"
                )
            jobs.extend(ColorizeJob(f, out / os.path.relpath(f, p)) for f in find_images([p], recursive))
        elif p.exists():
            jobs.append(ColorizeJob(p, out / p.name))
        elif _has_magic(str(item)):
            base = _glob_base(str(item))
            try:
                files = find_images([str(item)], recursive)
            except FileNotFoundError as e:
                raise CLIError(str(e)) from None
            for f in files:
                if _is_within(f.resolve(), out_res):
                    raise CLIError(
                        f"the pattern {item!r} matches {f}, inside the output folder {out}: outputs would "
                        "be read back as inputs; choose an output folder outside the inputs"
                    )
                jobs.append(ColorizeJob(f, out / os.path.relpath(f, base)))
        else:
            raise CLIError(f"no such file or folder: {item}")

    # de-duplicate (the same file given twice) and refuse collisions
    by_src: dict[Path, ColorizeJob] = {}
    for j in jobs:
        by_src.setdefault(j.src.resolve(), j)
    srcs = set(by_src)
    by_dst: dict[Path, ColorizeJob] = {}
    for j in by_src.values():
        dst_res = j.dst.resolve()
        if dst_res in srcs or _samefile(j.dst, j.src):
            raise CLIError(
                f"refusing to write to {out}: the output {j.dst} would overwrite the input "
                f"{by_src.get(dst_res, j).src}; choose an output folder that holds none of the inputs"
            )
        other = by_dst.get(dst_res)
        if other is not None:
            raise CLIError(
                f"{other.src} and {j.src} would both be written to {j.dst}; colorize them in separate "
                "runs or pass their parent folder"
            )
        by_dst[dst_res] = j
    return sorted(by_src.values(), key=lambda j: str(j.dst))


def _samefile(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _remove_stale_temps(jobs: Sequence[ColorizeJob]) -> int:
    """Delete ``.{name}.tmp-*`` files a killed earlier run left next to our outputs. Returns the count."""
    names: dict[Path, set[str]] = {}
    for j in jobs:
        names.setdefault(j.dst.parent, set()).add(j.dst.name)
    removed = 0
    for folder, ours in names.items():
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for entry in it:
                n = entry.name
                if n.startswith(".") and _TEMP_MARK in n and n[1:n.rindex(_TEMP_MARK)] in ours:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
    return removed


# ----------------------------------------------------------------------------------------------
# colorize: running


@dataclass
class ColorizeSummary:
    total: int = 0
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    not_started: int = 0
    seconds: float = 0.0
    interrupted_by: int | None = None


def _read(path: Path) -> Any:
    from . import io as cio

    return cio.read_image(path)


def _rgb_meta(meta: Any) -> Any:
    """``meta`` for an RGB output: an ICC profile made for another colour space (the CMYK profile of a
    CMYK JPEG, the gray profile of a gray scan) would misdescribe RGB pixels, so it is left out."""
    icc = getattr(meta, "icc_profile", None)
    if icc and icc[16:20] != b"RGB ":
        from dataclasses import replace

        return replace(meta, icc_profile=None)
    return meta


def _write(img: Any, job: ColorizeJob, meta: Any) -> Path:
    from . import io as cio

    return cio.save_image(img, job.dst, source=job.src, meta=_rgb_meta(meta))


class _StepFailed(Exception):
    """A file's failure on an io thread; the message is the reason the summary lists."""


def _read_and_prepare(path: Path, render_size: int) -> tuple[Any, Any, Any]:
    """io thread: decode ``path`` and make the network's input -> (RGB image, meta, (3, h, w) tensor)."""
    from .infer import prepare_image

    img, meta = _read(path)
    try:
        x = prepare_image(img, render_size)
    except Exception as e:
        raise _StepFailed(f"colorizing failed: {type(e).__name__}: {e}") from e
    return img, meta, x


def _merge_and_write(img: Any, ab: Any, job: ColorizeJob, meta: Any) -> Path:
    """io thread: put the predicted chroma ``ab`` (2, h, w) on the full-size photo, then write it atomically."""
    from .infer import merge_chroma

    try:
        result = merge_chroma(img, ab)
    except Exception as e:  # out of memory, ...
        raise _StepFailed(f"colorizing failed: {type(e).__name__}: {e}") from e
    del img
    return _write(result, job, meta)


def _run_colorize(
    jobs: Sequence[ColorizeJob],
    colorizer: Any,
    render_size: int | None,
    io_threads: int,
    stop: _StopFlag,
    progress: _Progress,
) -> ColorizeSummary:
    """The main thread only runs the network (chroma at render size); a pool of ``io_threads`` threads
    decodes and shrinks the next photos ahead of it and merges + writes the finished ones behind it.

    Both queues are bounded (at most ``max(2, io_threads)`` photos decoded ahead and ``io_threads``
    waiting to be merged), so memory stays flat however many photos there are.
    """
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from .infer import DEFAULT_RENDER_SIZE, predict_chroma
    from .io import ImageLoadError

    summary = ColorizeSummary(total=len(jobs))
    t0 = time.monotonic()
    model = colorizer.model
    rs = int(render_size or getattr(colorizer, "render_size", DEFAULT_RENDER_SIZE))
    io_threads = max(1, io_threads)
    prefetch, max_writes = max(2, io_threads), io_threads
    queue = deque(jobs)
    reads: deque[tuple[ColorizeJob, Future]] = deque()
    writes: dict[Future, ColorizeJob] = {}
    current: ColorizeJob | None = None  # taken from ``reads``, not yet handed to the pool

    def fail(job: ColorizeJob, reason: str) -> None:
        summary.failed.append((job.src, reason))
        progress.message(f"colorkit: failed: {job.src}: {reason}")
        progress.update()

    def opened_or_fail(job: ColorizeJob, fut: Future) -> tuple[Any, Any, Any] | None:
        try:
            return fut.result()
        except ImageLoadError as e:
            reason = e.reason
        except _StepFailed as e:
            reason = str(e)
        except Exception as e:  # anything else a decoder may throw
            reason = f"cannot read: {type(e).__name__}: {e}"
        fail(job, reason)
        return None

    def reap(block: bool = False) -> None:
        if not writes:
            return
        if block:
            done = wait(list(writes), return_when=FIRST_COMPLETED)[0]
        else:
            done = {f for f in writes if f.done()}
        for fut in done:
            job = writes.pop(fut)
            try:
                fut.result()
            except KeyboardInterrupt:
                stop.signum = stop.signum or signal.SIGINT
                summary.not_started += 1
            except _StepFailed as e:
                fail(job, str(e))
            except Exception as e:  # disk full, permissions, ...: this file fails, the batch goes on
                fail(job, f"cannot write {job.dst}: {e}")
            else:
                summary.done.append(job.dst)
                progress.update()

    pool = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="colorkit-io")
    try:
        while queue or reads:
            while queue and len(reads) < prefetch and stop.signum is None:
                j = queue.popleft()
                reads.append((j, pool.submit(_read_and_prepare, j.src, rs)))
            reap()
            if stop.signum is not None or not reads:
                break
            current, fut = reads.popleft()
            opened = opened_or_fail(current, fut)
            if opened is None:
                current = None
                continue
            img, meta, x = opened
            try:
                ab = predict_chroma(model, x.unsqueeze(0))[0]
            except Exception as e:  # out of memory, ...: this file fails, the batch goes on
                fail(current, f"colorizing failed: {type(e).__name__}: {e}")
                current = None
                continue
            writes[pool.submit(_merge_and_write, img, ab, current, meta)] = current
            current = None
            del opened, img, x
            while len(writes) > max_writes:
                reap(block=True)
    except KeyboardInterrupt:  # a second signal: abandon the image in progress
        stop.signum = stop.signum or signal.SIGINT
    finally:
        for _, fut in reads:
            fut.cancel()
        summary.not_started += len(queue) + len(reads) + (current is not None)
        while writes:  # merges and writes already handed over finish (atomically) before we report
            try:
                reap(block=True)
            except KeyboardInterrupt:
                stop.signum = stop.signum or signal.SIGINT
        pool.shutdown(wait=True, cancel_futures=True)
        summary.seconds = time.monotonic() - t0
        summary.interrupted_by = stop.signum
    return summary


def _print_colorize_summary(s: ColorizeSummary, out: Path, failures_file: Path | None) -> None:
    rate = len(s.done) / s.seconds if s.seconds > 0 and s.done else 0.0
    head = "stopped" if s.interrupted_by else "done"
    print(f"colorkit: {head}: {len(s.done)} colorized, {len(s.skipped)} skipped (output already there), "
          f"{len(s.failed)} failed{f', {s.not_started} not processed' if s.interrupted_by else ''} "
          f"in {_fmt_duration(s.seconds)} ({rate:.2f} img/s); outputs in {out}")
    if s.failed:
        print(f"colorkit: {len(s.failed)} file(s) could not be colorized:")
        for path, reason in s.failed:
            print(f"  {path}: {reason}")
        if failures_file is not None:
            print(f"colorkit: the list is in {failures_file}")
    if s.interrupted_by:
        name = signal.Signals(s.interrupted_by).name
        print(f"colorkit: interrupted by {name}; every written file is complete. Run the same command again "
              "to colorize the rest (finished files are skipped).")


def _cmd_colorize(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if args.render_size is not None and args.render_size < 32:
        raise CLIError(f"--render-size must be at least 32, got {args.render_size}")
    if args.jobs < 1:
        raise CLIError(f"--jobs must be at least 1, got {args.jobs}")
    jobs = plan_colorize(args.inputs, out, recursive=args.recursive)
    if out.exists() and not out.is_dir():
        raise CLIError(f"-o {out}: exists and is not a folder")
    if not jobs:
        print(f"colorkit: no image files found in {', '.join(args.inputs)}"
              f"{'' if args.recursive else ' (add --recursive to search sub-folders)'}")
        return EXIT_OK

    from .io import IMAGE_EXTENSIONS, write_text_atomic

    model = _load_model(Path(args.model), args.device)
    unsupported = [j for j in jobs if j.src.suffix.lower() not in IMAGE_EXTENSIONS]
    readable = [j for j in jobs if j.src.suffix.lower() in IMAGE_EXTENSIONS]
    todo, skipped = [], []
    for j in readable:
        (todo if args.overwrite or not j.dst.exists() else skipped).append(j)
    _remove_stale_temps(todo)
    rs = args.render_size or model.render_size
    print(f"colorkit: {len(jobs)} image(s): {len(todo)} to colorize, {len(skipped)} already done"
          f"{', ' + str(len(unsupported)) + ' unsupported' if unsupported else ''}; model {args.model} "
          f"(render size {rs}), output {out}", flush=True)

    progress = _Progress(len(todo) + len(unsupported), enabled=not args.quiet)
    with _StopFlag() as stop, _torch_threads(args.threads):
        for j in unsupported:
            exts = ", ".join(sorted(IMAGE_EXTENSIONS))
            progress.message(f"colorkit: failed: {j.src}: unsupported file type {j.src.suffix!r} "
                             f"(colorkit reads and writes {exts})")
            progress.update()
        summary = _run_colorize(todo, model, rs, args.jobs, stop, progress)
    progress.close()
    summary.skipped = [j.dst for j in skipped]
    summary.total = len(jobs)
    exts = ", ".join(sorted(IMAGE_EXTENSIONS))
    summary.failed = [(j.src, f"unsupported file type {j.src.suffix!r} (colorkit reads and writes {exts})")
                      for j in unsupported] + summary.failed

    failures_file: Path | None = out / FAILURES_FILE
    try:
        if summary.failed:
            write_text_atomic(failures_file, "".join(f"{p}\t{r}\n" for p, r in summary.failed))
        elif summary.interrupted_by is None:
            failures_file.unlink(missing_ok=True)
            failures_file = None
    except OSError:
        failures_file = None
    _print_colorize_summary(summary, out, failures_file)
    if summary.interrupted_by is not None:
        return 128 + summary.interrupted_by
    return EXIT_FAILED if summary.failed else EXIT_OK


# ----------------------------------------------------------------------------------------------
# train


def _read_config(model_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise CLIError(f"{model_dir / 'config.json'}: cannot read the model config ({e})") from None


def _resolve_start(args: argparse.Namespace) -> tuple[Path | None, str, str, str]:
    """-> (model to fine-tune or None, arch, mode, a sentence saying what happens)."""
    wanted = (args.arch, args.mode)
    if args.from_scratch or (args.from_model is not None and args.from_model.lower() == "none"):
        arch, mode = args.arch or "resnet34", args.mode or "lab"
        enc = "an ImageNet-pretrained encoder" if args.pretrained else "random weights"
        return None, arch, mode, f"training a new {arch}/{mode} model from {enc}"
    explicit = args.from_model is not None
    start = Path(args.from_model) if explicit else DEFAULT_MODEL
    if not explicit and not (start / "config.json").is_file():
        arch, mode = args.arch or "resnet34", args.mode or "lab"
        enc = "an ImageNet-pretrained encoder" if args.pretrained else "random weights"
        return None, arch, mode, f"no starter model installed: training a new {arch}/{mode} model from {enc}"
    _check_model_dir(start, "--from")
    gen = _read_config(start).get("generator", {})
    arch, mode = gen.get("arch", "resnet34"), gen.get("mode", "rgb")
    clash = [f"--{n} {w}" for n, w, have in (("arch", wanted[0], arch), ("mode", wanted[1], mode))
             if w is not None and w != have]
    if clash:
        if explicit:
            raise CLIError(f"--from {start} is a {arch}/{mode} model; {' '.join(clash)} does not match it "
                           "(drop those options, or pass --from none to train from scratch)")
        arch, mode = args.arch or arch, args.mode or mode
        enc = "an ImageNet-pretrained encoder" if args.pretrained else "random weights"
        return None, arch, mode, (f"the starter model is {gen.get('arch')}/{gen.get('mode')}, so "
                                  f"{' '.join(clash)} trains a new model from {enc}")
    what = "the starter model" if not explicit else str(start)
    return start, arch, mode, f"fine-tuning {what} ({arch}/{mode}); pass --from none to train from scratch"


def _parse_lr(text: str | None) -> float | tuple[float, float] | None:
    if text is None:
        return None
    from .train import parse_lr

    try:
        return parse_lr(text)
    except ValueError:
        raise CLIError(f"--lr {text!r}: expected a number (1e-3) or LO:HI (1e-5:1e-3)") from None


def _gan_function() -> Any:
    """``colorkit.gan.train_gan`` (NoGAN fine-tuning of a saved model), or CLIError when unavailable."""
    try:
        from . import gan
    except ImportError as e:
        raise CLIError(f"--gan needs colorkit.gan, which cannot be imported ({e})", EXIT_FAILED) from None
    fn = getattr(gan, "train_gan", None)
    if not callable(fn):
        raise CLIError("--gan: this colorkit.gan has no train_gan function", EXIT_FAILED)
    return fn


_STAGE_KEYS = frozenset({"stage", "size", "epochs", "lr", "bs", "frozen", "data_pct", "seconds"})


def _training_metrics(model_dir: Path) -> dict[str, Any]:
    """The last stage's final validation loss and metrics (from MODEL/config.json), for metrics.json."""
    training = _read_config(model_dir).get("training") or {}
    hist = training.get("history") or [{}]
    n_valid = (training.get("data") or {}).get("n_valid")
    final = {k: v for k, v in hist[-1].items() if k not in _STAGE_KEYS}
    return {"split": "training validation split (last stage)", "n_valid": n_valid, **final}


def _cmd_train(args: argparse.Namespace) -> int:
    datas, out = [Path(d) for d in args.data], Path(args.output)
    for data in datas:
        if not data.exists():
            raise CLIError(f"no such folder: {data}")
        if data.is_dir() and _is_within(out.resolve(), data.resolve()):
            raise CLIError(f"-o {out} is inside the training folder {data}: the model's report images would be "
                           "read as training photos next time; choose a folder outside it")
    if args.class_weight < 0 or not 0 <= args.rebalance <= 1 or args.temperature <= 0:
        raise CLIError("--class-weight must be >= 0, --rebalance in [0, 1] and --temperature > 0")
    if args.valid is not None and not Path(args.valid).is_dir():
        raise CLIError(f"--valid {args.valid}: no such folder")
    if args.render_size < 32:
        raise CLIError(f"--render-size must be at least 32, got {args.render_size}")
    start, arch, mode, plan = _resolve_start(args)
    gan_fn = _gan_function() if args.gan else None

    from dataclasses import replace

    from .train import DEFAULT_STAGES, parse_stages

    lr = _parse_lr(args.lr)
    try:
        if args.stages:
            stages = parse_stages(args.stages, **({"lr": lr} if lr is not None else {}), bs=args.bs)
        else:
            changes = {**({"bs": args.bs} if args.bs else {}), **({"lr": lr} if lr is not None else {})}
            stages = [replace(s, **changes) for s in DEFAULT_STAGES]
    except ValueError as e:
        raise CLIError(f"--stages: {e}") from None

    source: Any = args.data[0] if len(args.data) == 1 else list(args.data)
    if args.max_items:
        import random

        from .io import find_images

        files = find_images(source, recursive=True)
        if len(files) > args.max_items:
            source = sorted(random.Random(args.seed).sample(files, args.max_items))
            print(f"colorkit: using {args.max_items} of the {len(files)} images in {' '.join(args.data)} "
                  "(--max-items)")

    print(f"colorkit: {plan}")
    print("colorkit: stages: " + ", ".join(f"{s.size}px x{s.epochs} (bs {s.bs})" for s in stages))
    from .models import WeightsUnavailableError
    from .train import train_colorizer

    with _torch_threads(args.threads), _RaiseOnSignal() as sig:
        try:
            learn = train_colorizer(
                source, out, stages, valid=args.valid, arch=arch, mode=mode, pretrained=args.pretrained,
                from_model=start, resume=args.resume, seed=args.seed, render_size=args.render_size,
                loss=args.loss, class_weight=args.class_weight, rebalance=args.rebalance,
                temperature=args.temperature, precision=args.precision, in_memory=args.in_memory,
                track=args.track,
            )
            if gan_fn is not None:
                size, bs = args.gan_size or stages[-1].size, stages[-1].bs
                print(f"colorkit: NoGAN fine-tuning (--gan) at {size}px, {args.gan_iters} iterations")
                try:
                    report = gan_fn(out, source, out, valid=args.valid, size=size, bs=bs,
                                    loss_pretrained=args.pretrained, seed=args.seed, n_iter=args.gan_iters)
                except (WeightsUnavailableError, ValueError, FileNotFoundError) as e:
                    msg = f"NoGAN phase failed: {e}\n(the model trained before the GAN phase is saved in {out})"
                    raise CLIError(msg, EXIT_FAILED) from None
                if report.get("kept_start"):
                    kept = "kept the model from before the GAN phase (it scored best)"
                else:
                    kept = f"kept GAN checkpoint {report.get('best_iter')}"
                print(f"colorkit: NoGAN done: {kept}")
        except WeightsUnavailableError as e:
            raise CLIError(str(e), EXIT_FAILED) from None
        except (ValueError, FileNotFoundError) as e:
            raise CLIError(str(e), EXIT_FAILED) from None
        except KeyboardInterrupt:
            name = signal.Signals(sig.signum).name
            print(f"colorkit: training interrupted by {name}; finished stages are checkpointed in "
                  f"{out / 'checkpoints'}: run the same command again to resume")
            return 128 + sig.signum

    info = getattr(learn.dls, "colorize_info", {})
    skipped = info.get("skipped", [])
    if skipped:
        print(f"colorkit: skipped {len(skipped)} unreadable photo(s):")
        for item in skipped:
            pair = isinstance(item, (list, tuple)) and len(item) > 1
            print(f"  {item[0]}: {item[1]}" if pair else f"  {item}")
    print(f"colorkit: model saved to {out} ({info.get('n_train', '?')} training / "
          f"{info.get('n_valid', '?')} validation photos)")

    code = EXIT_OK
    if args.valid is None and gan_fn is not None:
        print("colorkit: no --valid folder: skipped the held-out evaluation (metrics.json holds the GAN "
              f"phase's best checkpoint scores); run `colorkit evaluate PHOTOS --model {out}` for a report")
    elif args.valid is None:
        from .io import write_json_atomic

        write_json_atomic(out / "metrics.json", _training_metrics(out))
        print("colorkit: no --valid folder: skipped the held-out evaluation (metrics.json holds the training "
              "validation split's final values); run `colorkit evaluate PHOTOS --model "
              f"{out}` for a full report")
    else:
        try:
            from .evaluate import format_table, write_report

            print(f"colorkit: evaluating {out} on the held-out photos in {args.valid}")
            result = _evaluate_model(out, args.valid, args.eval_size, None)
            paths = write_report(result, out)
            print(format_table(result))
            _print_skipped(result)
            print(f"colorkit: evaluation report written to {out}:")
            _print_paths(paths)
        except ImportError as e:
            _err(f"warning: evaluation skipped: colorkit.evaluate is not available ({e})")
            code = EXIT_FAILED
        except Exception as e:  # the model is saved; report the evaluation failure, do not lose it
            _err(f"warning: held-out evaluation failed ({type(e).__name__}: {e}); the model is saved")
            code = EXIT_FAILED
    return code


# ----------------------------------------------------------------------------------------------
# evaluate


def _evaluate_model(model: Path | None, source: str, size: int, limit: int | None, fid: bool = True,
                    progress: Any = None, render_size: int | None = None) -> Any:
    """Evaluate ``model`` (rendered at ``render_size``, default: the model's own, as `colorize` uses it)."""
    from .evaluate import evaluate

    clr = _load_model(model) if model is not None else None
    rs = render_size or (clr.render_size if clr is not None else None)
    return evaluate(clr, source, size=size, limit=limit, fid=fid, progress=progress, render_size=rs)


def _print_paths(paths: Any) -> None:
    items = paths.items() if isinstance(paths, dict) else ((None, p) for p in (paths or []))
    for name, p in items:
        print(f"  {name + ': ' if name else ''}{p}")


def _print_skipped(result: Any) -> None:
    skipped = getattr(result, "skipped", None) or []
    if skipped:
        print(f"colorkit: skipped {len(skipped)} file(s):")
        for item in skipped:
            print(f"  {item.get('file')}: {item.get('reason')}")


class _EvalProgress:
    """``progress(done, total)`` callback for colorkit.evaluate, drawing a :class:`_Progress`."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = _Progress(total, label="evaluating", enabled=not self.quiet)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if not Path(args.source).exists():
        raise CLIError(f"no such folder: {args.source}")
    if args.predictions and args.model:
        raise CLIError("pass --model or --predictions, not both")
    if args.predictions and not Path(args.predictions).is_dir():
        raise CLIError(f"--predictions {args.predictions}: no such folder")
    if args.size < 8:
        raise CLIError(f"--size must be at least 8, got {args.size}")
    if args.render_size is not None and args.render_size < 32:
        raise CLIError(f"--render-size must be at least 32, got {args.render_size}")
    if args.model:
        _check_model_dir(Path(args.model))
    try:
        from .evaluate import evaluate_predictions, format_table, write_report
    except ImportError as e:
        raise CLIError(f"colorkit.evaluate is not available in this install ({e})", EXIT_FAILED) from None

    progress = _EvalProgress(args.quiet)
    try:
        with _torch_threads(args.threads):
            if args.predictions:
                print(f"colorkit: scoring the predictions in {args.predictions} against {args.source}")
                result = evaluate_predictions(args.predictions, args.source, size=args.size, limit=args.limit,
                                              fid=args.fid, progress=progress)
            else:
                if not args.model:
                    print("colorkit: no --model or --predictions: evaluating the baselines only")
                result = _evaluate_model(Path(args.model) if args.model else None, args.source, args.size,
                                         args.limit, fid=args.fid, progress=progress,
                                         render_size=args.render_size)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise CLIError(str(e), EXIT_FAILED) from None
    finally:
        progress.close()
    paths = write_report(result, args.out)
    print(format_table(result))
    _print_skipped(result)
    if getattr(result, "missing", None):
        print(f"colorkit: {len(result.missing)} ground-truth file(s) have no prediction "
              "(listed in metrics.json)")
    print(f"colorkit: report written to {args.out}:")
    _print_paths(paths)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------
# info


def _stage_summary(stages: Sequence[dict[str, Any]]) -> str:
    parts = []
    for s in stages:
        extra = [f"bs {s.get('bs')}"]
        if s.get("frozen"):
            extra.append("frozen")
        if s.get("data_pct", 1) != 1:
            extra.append(f"{s['data_pct']:.0%} data")
        parts.append(f"{s.get('size')}px x{s.get('epochs')} ({', '.join(extra)})")
    return ", ".join(parts)


def _cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.model) if args.model else DEFAULT_MODEL
    _check_model_dir(path, "MODEL")
    config = _read_config(path)
    metrics_file = path / "metrics.json"
    metrics: Any = {}
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except ValueError as e:
            metrics = {"error": f"unreadable metrics.json ({e})"}
    gen = config.get("generator", {})
    weights = path / "model.safetensors"
    n_params = config.get("n_params")
    print(f"model:        {path}{'  (the starter model)' if path == DEFAULT_MODEL else ''}")
    print(f"architecture: {gen.get('arch')} U-Net, {gen.get('mode')} output"
          f"{', self-attention' if gen.get('self_attention') else ''}")
    print(f"render size:  {config.get('render_size')} px")
    print(f"parameters:   {f'{n_params / 1e6:.2f} M' if isinstance(n_params, int) else n_params}")
    print(f"dtype:        {config.get('dtype')}")
    print(f"file size:    {_fmt_bytes(weights.stat().st_size)} ({weights.name})")
    print(f"made with:    colorkit {config.get('colorkit_version')} (format {config.get('format_version')})")
    tr = config.get("training") or {}
    if tr:
        d = tr.get("data") or {}
        print("training:")
        if d:
            sk = d.get("skipped") or []
            print(f"  data:       {d.get('source')} ({d.get('n_train')} train, {d.get('n_valid')} valid"
                  f"{', ' + str(len(sk)) + ' skipped' if sk else ''})"
                  f"{', valid folder ' + str(d['valid']) if d.get('valid') else ''}")
        if tr.get("stages"):
            print(f"  stages:     {_stage_summary(tr['stages'])}")
        start = tr.get("from_model")
        print(f"  start:      {'fine-tuned from ' + start if start else 'from scratch'}"
              f"{', ImageNet encoder' if tr.get('pretrained_encoder') else ''}")
        hist = tr.get("history") or []
        if hist:
            secs = sum(float(h.get("seconds", 0) or 0) for h in hist)
            print(f"  time:       {_fmt_duration(secs)} on {tr.get('device', '?')}, seed {tr.get('seed')}")
            last = {k: v for k, v in hist[-1].items() if k not in _STAGE_KEYS}
            if last:
                print("  final:      " + ", ".join(f"{k} {_fmt_value(v)}" for k, v in last.items()))
    else:
        print("training:     (no record)")
    if isinstance(metrics, dict) and isinstance(metrics.get("summary"), dict):  # a colorkit.evaluate report
        st = metrics.get("settings") or {}
        print(f"metrics:      {metrics.get('n_images')} held-out images at {st.get('size')}px"
              f"{' from ' + str(st['source']) if st.get('source') else ''}")
        for method, row in metrics["summary"].items():
            vals = [f"{k} {_fmt_value(v)}" for k, v in row.items() if not isinstance(v, (dict, list))]
            print(f"  {method}: " + ", ".join(vals))
    elif metrics:
        print("metrics:")
        for k, v in _flatten(metrics):
            print(f"  {k}: {_fmt_value(v)}")
    else:
        print("metrics:      (none: run `colorkit evaluate PHOTOS --model MODEL`)")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------
# demo


def _synthetic_scene(w: int = 320, h: int = 240, seed: int = 0) -> Any:
    """A colourful made-up scene (sky, sun, hills, house) as an RGB PIL image: no photo files shipped."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = (1 - yy) * np.array([70, 130, 220], np.float32) + yy * np.array([190, 220, 250], np.float32)
    arr = np.broadcast_to(sky, (h, w, 3)).copy()
    arr += rng.normal(0, 3, arr.shape).astype(np.float32)
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.72, h * 0.08, w * 0.86, h * 0.27), fill=(250, 200, 40))
    d.polygon([(0, h * 0.62), (w * 0.3, h * 0.45), (w * 0.62, h * 0.6), (w, h * 0.5), (w, h), (0, h)],
              fill=(60, 150, 60))
    d.rectangle((w * 0.0, h * 0.82, w, h), fill=(40, 110, 40))
    d.rectangle((w * 0.2, h * 0.55, w * 0.4, h * 0.78), fill=(200, 60, 50))
    d.polygon([(w * 0.18, h * 0.56), (w * 0.3, h * 0.42), (w * 0.42, h * 0.56)], fill=(110, 60, 40))
    d.rectangle((w * 0.27, h * 0.66, w * 0.33, h * 0.78), fill=(90, 50, 30))
    return img


def _demo_samples() -> list[tuple[str, Any, str]]:
    """-> [(name, RGB PIL image, credit)] from samples/samples.json (or the built-in list)."""
    from .io import load_image

    manifest = SAMPLES_DIR / "samples.json"
    entries = json.loads(manifest.read_text())["samples"] if manifest.is_file() else [
        {"name": "grace_hopper", "source": "matplotlib", "file": "grace_hopper.jpg", "credit": ""},
        {"name": "synthetic_scene", "source": "synthetic", "seed": 0, "credit": ""},
    ]
    out = []
    for e in entries:
        if e.get("source") == "matplotlib":
            try:
                from matplotlib import cbook

                path = cbook.get_sample_data(e["file"], asfileobj=False)
                out.append((e["name"], load_image(path), e.get("credit", "")))
            except Exception as err:  # matplotlib without its sample data: the demo goes on without it
                _err(f"warning: sample {e['file']} is unavailable ({err}); skipped")
        elif e.get("source") == "synthetic":
            out.append((e["name"], _synthetic_scene(seed=int(e.get("seed", 0))), e.get("credit", "")))
        elif e.get("source") == "file":
            out.append((e["name"], load_image(SAMPLES_DIR / e["file"]), e.get("credit", "")))
    return out


def _gray_of(img: Any) -> Any:
    """RGB PIL image -> its gray version (same Lab lightness), still RGB."""
    import numpy as np
    import torch
    from PIL import Image

    from .color import to_gray

    t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
    g = to_gray(t, channels=3).mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    return Image.fromarray(g, "RGB")


def _grid(rows: Sequence[Sequence[Any]], labels: Sequence[str], height: int = 240) -> Any:
    """Rows of PIL images -> one labelled grid image (each cell scaled to ``height``)."""
    from PIL import Image, ImageDraw, ImageFont

    pad, head = 8, 22
    scaled = [[im.resize((max(1, round(im.width * height / im.height)), height), Image.Resampling.LANCZOS)
               for im in row] for row in rows]
    col_w = [max(r[c].width for r in scaled) for c in range(len(labels))]
    W = sum(col_w) + pad * (len(col_w) + 1)
    H = head + len(scaled) * (height + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    x = pad
    for c, label in enumerate(labels):
        d.text((x, 3), label, fill=(0, 0, 0), font=font)
        for r, row in enumerate(scaled):
            canvas.paste(row[c], (x, head + r * (height + pad)))
        x += col_w[c] + pad
    return canvas


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.output)
    model_path = Path(args.model) if args.model else DEFAULT_MODEL
    t0 = time.monotonic()
    with _torch_threads(args.threads):
        clr = _load_model(model_path, "cpu")
        from .io import save_image

        samples = _demo_samples()
        if not samples:
            raise CLIError("no demo samples are available", EXIT_FAILED)
        rows, written = [], []
        for name, original, _credit in samples:
            gray = _gray_of(original)
            colorized = clr.colorize(gray)
            written.append(save_image(gray, out / f"{name}_gray.png"))
            written.append(save_image(colorized, out / f"{name}_colorized.png"))
            rows.append([gray, colorized, original])
        grid = save_image(_grid(rows, ["black & white input", "colorkit", "original colour"]),
                          out / "demo_grid.png")
    print(f"colorkit: colorized {len(samples)} sample photo(s) with {model_path} in "
          f"{time.monotonic() - t0:.1f} s")
    for p in written:
        print(f"  {p}")
    print(f"colorkit: before/after grid: {grid}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------
# the parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the descriptions' and examples' line breaks; show the defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, False, True, argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


def _add_common(p: argparse.ArgumentParser, threads: bool = True) -> None:
    if threads:
        p.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch threads for the network (default: every core, or OMP_NUM_THREADS)")


def build_parser() -> argparse.ArgumentParser:
    """The ``colorkit`` argument parser (standard library only: building it is instant)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="colorkit",
        formatter_class=_Formatter,
        description="Colorize black-and-white photographs with a fastai U-Net.",
        epilog=(
            "Examples:\n"
            "  colorkit demo                                   # try it on the bundled samples\n"
            "  colorkit colorize scans/ -o colorized/ --recursive\n"
            "  colorkit train my_photos/ -o my_model/ --valid my_valid/\n"
            "  colorkit evaluate my_valid/ --model my_model/\n"
            "  colorkit info my_model/\n\n"
            "Run `colorkit COMMAND --help` for each command's options."
        ),
    )
    parser.add_argument("--version", action="version", version=f"colorkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # colorize
    p = sub.add_parser(
        "colorize", formatter_class=_Formatter, help="colorize photos (files, folders, globs)",
        description=(
            "Colorize black-and-white photos. Each output keeps its input's size, format (extension), EXIF\n"
            "(orientation normalised) and ICC profile. A folder's images keep their sub-path under OUT;\n"
            "single files go straight into OUT. Inputs are never overwritten: an OUT that would, exits 2.\n"
            "Outputs already in OUT are skipped (unless --overwrite), and every write is atomic, so an\n"
            "interrupted run (Ctrl-C, SIGTERM: exit 130/143) resumes by running the same command again.\n"
            "Unreadable files are reported and listed in OUT/colorkit-failures.txt; the rest of the batch\n"
            "completes and the exit code is 1."
        ),
        epilog=(
            "Example:\n"
            "  colorkit colorize scans/ -o colorized/ --recursive\n"
            "  colorkit colorize 'album/*.jpg' grandpa.tif -o out/ --model my_model/ --render-size 384\n\n"
            "Exit codes: 0 all done, 1 some files failed, 2 bad arguments or refused output, 130/143 stopped."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--model", default=str(DEFAULT_MODEL), metavar="M", help="model folder")
    p.add_argument("--render-size", type=int, default=None, metavar="N",
                   help="side of the square the network sees, in px (default: the model's; larger = more "
                        "detail in the colour, slower)")
    p.add_argument("-r", "--recursive", action="store_true", help="also colorize images in sub-folders")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("-j", "--jobs", type=int, default=2, metavar="N",
                   help="background threads that decode and write images while the network runs")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the network runs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=_cmd_colorize)

    # train
    p = sub.add_parser(
        "train", formatter_class=_Formatter, help="train or fine-tune a model on colour photos",
        description=(
            "Train a colorizer on a folder of COLOUR photos (gray inputs are made on the fly) and save it\n"
            "to MODEL. By default it fine-tunes the starter model; --from none trains from scratch (with\n"
            "an ImageNet encoder unless --no-pretrained). Progressive resizing: --stages SIZE:EPOCHS[:BS].\n"
            "Each finished stage is checkpointed under MODEL/checkpoints, so an interrupted run resumes.\n"
            "Unreadable photos are skipped and listed. With --valid, the model is then evaluated on that\n"
            "held-out folder: MODEL/metrics.json and a before/after grid PNG are written."
        ),
        epilog=(
            "Example:\n"
            "  colorkit train family_photos/ -o family_model/ --valid family_valid/\n"
            "  colorkit train photos/ -o m/ --from none --arch resnet18 --stages 64:4,128:2,220:1 --seed 1\n"
        ),
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="folder(s) of colour photos (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="folder to save the model to")
    p.add_argument("--loss", choices=("feature", "l1"), default="feature",
                   help="generator loss: VGG16 feature loss, or L1 on the Lab chroma")
    p.add_argument("--class-weight", type=float, default=0.0, metavar="W",
                   help="W > 0: predict a distribution over ab colour bins and add W x its cross-entropy "
                        "(more saturated colour; see docs/starter-model.md)")
    p.add_argument("--rebalance", type=float, default=0.0, metavar="LAMBDA",
                   help="class rebalancing of the colour-class term, 0 (off) .. 1")
    p.add_argument("--temperature", type=float, default=0.38, metavar="T",
                   help="annealed-mean temperature saved with a colour-class model (lower: more colour)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16 autocast + channels_last where the hardware has it (auto), or forced")
    p.add_argument("--in-memory", action="store_true",
                   help="decode every photo once and keep it in memory (much faster at small sizes; "
                        "augmentation is crops and flips only)")
    p.add_argument("--track", default=None, metavar="DIR",
                   help="after every epoch, log which-colour-where scores (sky, vegetation, skin hue) on the "
                        "photos in DIR to MODEL/checkpoints/track.jsonl")
    p.add_argument("--valid", metavar="DIR", default=None,
                   help="held-out folder of colour photos for validation and the final evaluation "
                        "(default: a seeded 10%% of DATA for validation, no final evaluation)")
    p.add_argument("--from", dest="from_model", metavar="MODEL", default=None,
                   help="model to fine-tune, or 'none' (default: the starter model when installed)")
    p.add_argument("--from-scratch", action="store_true", help="same as --from none")
    p.add_argument("--stages", default=None, metavar="SPEC",
                   help="progressive resizing, SIZE:EPOCHS[:BS][@LR] comma-separated, e.g. 64:4,128:2,220:1 or "
                        "64:1:16@1e-3,128:1@3e-4..6e-4 (LR or LO..HI; default: --lr) (default: the published recipe)")
    p.add_argument("--bs", type=int, default=None, metavar="N", help="batch size for every stage")
    p.add_argument("--lr", default=None, metavar="LR", help="learning rate, or LO:HI across the layer groups")
    p.add_argument("--arch", choices=("resnet18", "resnet34", "resnet50", "resnet101"), default=None,
                   help="encoder (default: the --from model's, else resnet34)")
    p.add_argument("--mode", choices=("rgb", "lab"), default=None,
                   help="what the network predicts: lab chroma or rgb (default: the --from model's, else lab)")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                   help="random encoder and VGG loss weights instead of ImageNet ones (no download needed)")
    p.add_argument("--gan", action="store_true",
                   help="finish with NoGAN fine-tuning (critic pretraining, then a short GAN phase that "
                        "keeps the best checkpoint)")
    p.add_argument("--gan-iters", type=int, default=200, metavar="N", help="GAN iterations with --gan")
    p.add_argument("--gan-size", type=int, default=None, metavar="N",
                   help="image size of the GAN phase (default: the last stage's)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue after the last finished stage found in MODEL/checkpoints (on by default)")
    p.add_argument("--seed", type=int, default=42, help="random seed (split, sampling, weights)")
    p.add_argument("--max-items", type=int, default=None, metavar="N",
                   help="train on a seeded sample of N photos (quick runs)")
    p.add_argument("--render-size", type=int, default=256, metavar="N",
                   help="render size saved with the model")
    p.add_argument("--eval-size", type=int, default=256, metavar="N",
                   help="image size for the final evaluation")
    _add_common(p)
    p.set_defaults(func=_cmd_train)

    # evaluate
    p = sub.add_parser(
        "evaluate", formatter_class=_Formatter, help="score a model (or predictions) against colour photos",
        description=(
            "Score colorizations against the true colours of SOURCE (a folder of colour photos): PSNR,\n"
            "SSIM, CIEDE2000, colourfulness, next to simple baselines. Writes metrics.json, a CSV and a\n"
            "before/after grid PNG into --out and prints a table. With --predictions DIR it scores existing\n"
            "outputs, matched to SOURCE by file name (stem, any extension); with neither --model nor\n"
            "--predictions, only the baselines are evaluated."
        ),
        epilog=(
            "Example:\n"
            "  colorkit evaluate valid_photos/ --model my_model/ --out eval/\n"
            "  colorkit evaluate valid_photos/ --predictions colorized/ --size 256\n"
        ),
    )
    p.add_argument("source", metavar="SOURCE", help="folder of colour photos (the ground truth)")
    p.add_argument("--model", default=None, metavar="M", help="model folder to evaluate")
    p.add_argument("--predictions", default=None, metavar="DIR", help="folder of colorized outputs to score")
    p.add_argument("--size", type=int, default=256, metavar="N", help="images are compared at N px")
    p.add_argument("--render-size", type=int, default=None, metavar="N",
                   help="the network renders at about N x N px (default: the model's own render size, as "
                        "`colorkit colorize` uses it)")
    p.add_argument("--out", default="colorkit-eval", metavar="DIR", help="report folder")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N photos")
    p.add_argument("--no-fid", dest="fid", action="store_false",
                   help="skip FID even when the InceptionV3 weights are on disk")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=_cmd_evaluate)

    # info
    p = sub.add_parser(
        "info", formatter_class=_Formatter, help="describe a saved model",
        description="Print a model's configuration, training recipe, data, metrics and file size.",
        epilog="Example:\n  colorkit info                 # the starter model\n  colorkit info my_model/\n",
    )
    p.add_argument("model", nargs="?", default=None, metavar="MODEL", help="model folder (default: starter)")
    p.set_defaults(func=_cmd_info)

    # demo
    p = sub.add_parser(
        "demo", formatter_class=_Formatter, help="colorize the bundled sample photos",
        description=(
            "Turn the bundled sample photos gray, colorize them with the starter model (or --model) and\n"
            "write the results and a before/after grid PNG (gray | colorized | original) to OUT. Runs\n"
            "offline on a CPU in seconds."
        ),
        epilog="Example:\n  colorkit demo\n  colorkit demo -o /tmp/demo --model my_model/\n",
    )
    p.add_argument("-o", "--output", default="colorkit-demo", metavar="OUT", help="output folder")
    p.add_argument("--model", default=None, metavar="M", help="model folder (default: the starter model)")
    _add_common(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``colorkit`` command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with _plain_warnings():
            return int(args.func(args))
    except CLIError as e:
        _err(f"error: {e}")
        return e.code
    except KeyboardInterrupt:
        _err("interrupted")
        return 128 + signal.SIGINT
