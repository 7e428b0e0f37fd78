"""The documentation stays true: the site builds strictly (every docstring reference and link resolves), the API
page covers every public name with an example, docs/cli.md covers every option, every ``colorkit ...`` command in
README.md and docs/ parses, and the Python blocks a user would paste run (or say which test or notebook covers
them)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import make_photo

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# Python blocks not run here, by (page, index among its python blocks): a phrase the block must still contain (so
# an edited block is looked at again) and what runs it instead.
NOT_RUN = {
    ("docs/architecture.md", 0): ("@register_generator", "a sketch (MyNetConfig is the reader's); tests/test_models.py "
                                                        "and tests/test_presets.py register real kinds"),
    ("docs/presets.md", 0): ('preset="pix2pix"', "20 epochs of pix2pix at 256 px; nbs/05_presets_evaluate.ipynb runs "
                                                 "the same calls on presets at 32 px"),
    ("docs/scale.md", 0): ("fit_progressive(learn", "four epochs of a ResNet34 U-Net at 64 px, over a minute on 2 "
                                                   "CPU cores; tests/test_distributed.py runs fit_progressive with "
                                                   "these keywords under torchrun, nbs/02_train.ipynb the same calls"),
    ("docs/serve.md", 0): ('serve("my_model/"', "serve() blocks until Ctrl+C; tests/test_serve.py runs serve() in a "
                                                "subprocess and create_app + ServerThread on a tiny model"),
    ("docs/usage.md", 0): ("colorize_learner(dls)", "pretrained=True needs ImageNet weights (none offline) and "
                                                    "DEFAULT_STAGES takes hours; nbs/02_train.ipynb runs the same "
                                                    "calls with pretrained=False and a short schedule"),
}


def _blocks(page: Path, lang: str) -> list[str]:
    return [body for fence, body in FENCE.findall(page.read_text()) if fence == lang]


def _rel(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


# ----------------------------------------------------------------------------------------------
# docstrings and the API page


def _roles():
    sys.path.insert(0, str(DOCS / "tools"))
    try:
        return importlib.import_module("griffe_roles")
    finally:
        sys.path.remove(str(DOCS / "tools"))


def test_every_docstring_reference_resolves():
    """``:func:`name``` and friends in every docstring name something that exists (the check the docs build makes)."""
    broken = _roles().broken_references("colorkit")
    assert not broken, "docstring references to nothing:\n" + "\n".join(broken)


def test_role_rewriting_links_public_names_and_flags_missing_ones():
    roles = _roles()
    text, broken = roles.rewrite(
        "See :func:`colorize_dls`, :class:`~colorkit.io.ImageLoadError`, :class:`Path` and :func:`no_such_thing`.",
        "colorkit.data")
    assert "[`colorize_dls()`][colorkit.data.colorize_dls]" in text
    assert "[`ImageLoadError`][colorkit.io.ImageLoadError]" in text
    assert "`Path`" in text and "][pathlib" not in text  # outside colorkit: code, no link
    assert broken == ["no_such_thing"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` of the whole site (offline, a few seconds): any warning fails it."""
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stderr[-6000:]}"
    return out


@pytest.mark.slow
def test_docs_build_strictly(site):
    assert (site / "index.html").is_file() and (site / "api" / "index.html").is_file()


# Public names griffe cannot see, so the API page cannot render them: constants set by one tuple assignment
# (``A, B = 1, 2``). Split the assignment (one name per line, with a docstring) to document one and drop it here.
NOT_RENDERED = {
    "colorkit.modelcard.CONFIG_FILE", "colorkit.modelcard.METRICS_FILE", "colorkit.modelcard.WEIGHTS_FILE",
    "colorkit.serve.DEFAULT_HOST", "colorkit.serve.DEFAULT_PORT",
}


def _public_modules() -> list[str]:
    import colorkit

    names = [m.name for m in pkgutil.walk_packages(colorkit.__path__, "colorkit.") if not m.name.endswith("__main__")]
    return [n for n in names if not any(p.startswith("_") for p in n.split(".")[1:])]


@pytest.mark.slow
def test_api_page_documents_every_public_name(site):
    """Every name in a public module's ``__all__`` has an entry on the API page, where it is defined or where a
    public module re-exports it."""
    roles = _roles()
    html = (site / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="(colorkit[\w.]*)"', html))

    # objects on the page by identity: a constant re-exported under another module or name is documented once
    shown = {}
    for anchor in anchors:
        found = roles.resolve(anchor, "colorkit")
        if found is not None and not isinstance(found[0], (int, float, str, bool, type(None))):
            shown[id(found[0])] = anchor

    missing, stale = [], sorted(NOT_RENDERED & anchors)
    for module in ["colorkit", *_public_modules()]:
        for name in getattr(importlib.import_module(module), "__all__", ()):
            found = roles.resolve(name, module)
            paths = {f"{module}.{name}", *([found[1]] if found else [])}
            if name == "__version__" or paths & anchors or paths & NOT_RENDERED:
                continue
            if found is None or id(found[0]) not in shown:
                missing.append(f"{module}.{name}")
    assert not missing, f"not on docs/api.md: {missing}"
    assert not stale, f"now rendered, drop them from NOT_RENDERED: {stale}"


def test_api_page_has_an_example_for_every_main_name():
    import colorkit

    code = "\n".join(_blocks(DOCS / "api.md", "python"))
    missing = [n for n in colorkit.__all__ if n != "__version__" and not re.search(rf"\b{n}\b", code)]
    assert not missing, f"docs/api.md has no example using {missing}"


# ----------------------------------------------------------------------------------------------
# the command line


def _subcommands():
    import argparse

    from colorkit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


def test_cli_page_covers_every_command_and_option():
    text = (DOCS / "cli.md").read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    _, commands = _subcommands()
    missing = []
    for name, sub in commands.items():
        body = sections.get(name)
        if body is None:
            missing.append(f"section '## {name}'")
            continue
        for action in sub._actions:
            for opt in action.option_strings:
                # options every network command shares are described once, at the top of the page
                shared = opt in ("-h", "--help", "--threads", "--device", "--precision", "-q", "--quiet")
                if not shared and f"`{opt}" not in body and f" {opt}`" not in body and f", {opt}" not in body:
                    missing.append(f"{name} {opt}")
    assert not missing, f"docs/cli.md does not mention: {missing}"


def _command_lines(text: str) -> list[str]:
    """The ``colorkit ...`` commands of a bash block (continuation lines joined, comments dropped)."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "colorkit":
            out.append(words)
    return out


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_colorkit_command_in_the_docs_parses(page):
    """Each ``colorkit`` command in a bash block names a real command with real options (the parser is the
    command line's own; nothing runs)."""
    parser, _ = _subcommands()
    for block in _blocks(page, "bash"):
        for words in _command_lines(block):
            try:
                parser.parse_args(words[1:])
            except SystemExit as e:
                if e.code:
                    pytest.fail(f"{_rel(page)}: `{shlex.join(words)}` does not parse (exit {e.code})")


# ----------------------------------------------------------------------------------------------
# Python blocks, run as a user would paste them, in a folder with the files they name


@pytest.fixture(scope="module")
def sandbox_files(tmp_path_factory) -> Path:
    """The files the docs' examples name: colour photos (``photos/``, ``valid/``, ``holdout/``), old photos
    (``grandpa_1932.jpg``, ``old.jpg``), a tiny saved colorizer (``my_model/``, ``my-model/``) and its ONNX export
    (``colorizer.onnx``), and a short film (``reel.mp4``)."""
    import av
    import numpy as np

    from colorkit import save_colorizer
    from colorkit.archs import AutoencoderConfig
    from colorkit.export import export_onnx
    from colorkit.models import build_generator

    root = tmp_path_factory.mktemp("docs-sandbox")
    for folder, n, seed in (("photos", 12, 0), ("valid", 4, 100), ("holdout", 4, 200)):
        (root / folder).mkdir()
        for i in range(n):
            make_photo(48, 64, seed=seed + i).save(root / folder / f"{folder}_{i:02d}.jpg")
    for name, seed in (("grandpa_1932.jpg", 7), ("old.jpg", 8)):
        make_photo(60, 80, seed=seed).convert("L").save(root / name)
    net = build_generator(AutoencoderConfig(img_size=32, nf=8).to_dict())
    for folder in ("my_model", "my-model"):
        save_colorizer(net, root / folder, render_size=64)
    export_onnx(net, root / "colorizer.onnx", dynamic=True, size=(64, 64))
    rng = np.random.default_rng(0)
    with av.open(str(root / "reel.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(6):
            gray = np.repeat(rng.integers(0, 256, (48, 64, 1), dtype=np.uint8), 3, axis=-1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(gray, format="rgb24")))
        out.mux(stream.encode(None))
    return root


@pytest.fixture
def sandbox(sandbox_files, tmp_path) -> Path:
    """A fresh copy of the sandbox for each page (a page's outputs, e.g. checkpoints, must not meet another's)."""
    return Path(shutil.copytree(sandbox_files, tmp_path / "sandbox"))


def _python_pages():
    return [p for p in PAGES if _blocks(p, "python")]


def test_not_run_blocks_are_still_there():
    """Every block in NOT_RUN still exists and still is the block it was (else this table is stale)."""
    for (page, i), (phrase, _) in NOT_RUN.items():
        blocks = _blocks(REPO / page, "python")
        assert i < len(blocks) and phrase in blocks[i], f"{page} python block {i} changed: update NOT_RUN"


@pytest.mark.slow
@pytest.mark.parametrize("page", _python_pages(), ids=_rel)
def test_python_blocks_run(page, sandbox, monkeypatch):
    """A page's Python blocks run in order in one namespace, in the sandbox folder, as a reader would paste them."""
    monkeypatch.chdir(sandbox)
    module = types.ModuleType("__docs_page__")  # a real module, as a reader's __main__ is (dataclasses need one)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ran = 0
    for i, block in enumerate(_blocks(page, "python")):
        if (_rel(page), i) in NOT_RUN:
            continue
        code = compile(block, f"{_rel(page)} [python block {i}]", "exec", dont_inherit=True)  # not our __future__
        exec(code, module.__dict__)  # noqa: S102
        ran += 1
    if not ran:
        pytest.skip(f"{_rel(page)}: every block is covered elsewhere (NOT_RUN)")
