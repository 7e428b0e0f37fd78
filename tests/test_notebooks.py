"""The tutorials in nbs/: valid notebooks with their outputs stripped that use only the public API, read the
``COLORKIT_QUICK`` switch in their first cell, and run top to bottom under ``COLORKIT_QUICK=1``.

Each notebook is executed with nbclient in a fresh kernel, in a temporary copy of the repository's layout
(``WORK/repo/nbs/NAME.ipynb``, with ``WORK/shared`` linked to ``../shared`` when it exists), so the files a
notebook writes never land in the checkout and ``../../shared/data`` resolves as it does beside a real clone.
Without ``../shared`` the notebooks make their tiny synthetic stand-ins, which
``test_notebook_runs_without_project_data`` checks for the notebooks that train.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NBS = sorted((REPO / "nbs").glob("*.ipynb"))
SHARED = REPO.parent / "shared"
EXPECTED = ["01_quickstart", "02_train", "03_nogan", "04_finetune_archive", "05_presets_evaluate", "06_video"]
CELL_TIMEOUT = 600  # seconds: a cell that hangs fails the test instead of stalling CI


def _cells(nb_path: Path, kind: str = "code") -> list[str]:
    nb = json.loads(nb_path.read_text())
    assert nb["nbformat"] == 4 and nb["cells"], f"{nb_path.name}: not a v4 notebook with cells"
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def test_the_tutorials_are_there():
    assert [p.stem for p in NBS] == EXPECTED


@pytest.mark.parametrize("nb_path", NBS, ids=[p.stem for p in NBS])
def test_notebook_code_compiles_and_uses_only_the_public_api(nb_path):
    """Every ``from colorkit... import`` names things in that module's ``__all__`` (the package's for
    ``from colorkit import``); no private module, no ``import colorkit.x`` reaching around it."""
    for i, src in enumerate(_cells(nb_path)):
        tree = ast.parse(src, filename=f"{nb_path.name}[cell {i}]")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "colorkit":
                assert not any(part.startswith("_") for part in node.module.split(".")), \
                    f"{nb_path.name} cell {i}: private module {node.module}"
                mod = importlib.import_module(node.module)
                public = set(getattr(mod, "__all__", ()))
                missing = [a.name for a in node.names if a.name not in public]
                assert not missing, f"{nb_path.name} cell {i}: {missing} not in {node.module}.__all__"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("colorkit.") for a in node.names), \
                    f"{nb_path.name} cell {i}: import names from modules with `from colorkit.x import ...`"


@pytest.mark.parametrize("nb_path", NBS, ids=[p.stem for p in NBS])
def test_first_cell_reads_the_quick_switch(nb_path):
    first = _cells(nb_path)[0]
    assert 'os.environ.get("COLORKIT_QUICK")' in first, f"{nb_path.name}: the first code cell must read COLORKIT_QUICK"


@pytest.mark.parametrize("nb_path", NBS, ids=[p.stem for p in NBS])
def test_notebooks_are_committed_without_outputs(nb_path):
    nb = json.loads(nb_path.read_text())
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, \
                f"{nb_path.name}: clear the outputs before committing"


def _kernel_spec(root: Path) -> str:
    """A kernel spec that runs this interpreter (the one colorkit is installed in), found through JUPYTER_PATH
    ahead of any user-wide ``python3`` kernel."""
    spec = root / "kernels" / "colorkit-nbtest"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "colorkit", "language": "python"}))
    return "colorkit-nbtest"


def run_notebook(nb_path: Path, work: Path, monkeypatch, with_data: bool = True) -> float:
    """Execute ``nb_path`` under COLORKIT_QUICK=1 in ``work/repo/nbs``; return the seconds it took.

    A failing cell raises ``nbclient.exceptions.CellExecutionError`` (with the cell's traceback); the executed
    notebook is kept as ``work/repo/nbs/NAME.executed.ipynb`` for a look."""
    import nbformat
    from nbclient import NotebookClient

    cwd = work / "repo" / "nbs"
    cwd.mkdir(parents=True)
    if with_data and SHARED.is_dir():
        (work / "shared").symlink_to(SHARED, target_is_directory=True)
    monkeypatch.setenv("COLORKIT_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # CI shares two cores; the quick runs are sized for one
    monkeypatch.setenv("JUPYTER_PATH", str(work / "jupyter"))
    nb = nbformat.read(str(nb_path), as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=_kernel_spec(work / "jupyter"),
                            resources={"metadata": {"path": str(cwd)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(nb, str(cwd / f"{nb_path.stem}.executed.ipynb"))
    return time.perf_counter() - t0


@pytest.mark.slow
@pytest.mark.parametrize("nb_path", NBS, ids=[p.stem for p in NBS])
def test_notebook_runs_top_to_bottom(nb_path, tmp_path, monkeypatch):
    seconds = run_notebook(nb_path, tmp_path, monkeypatch)
    print(f"{nb_path.name}: {seconds:.1f} s under COLORKIT_QUICK=1")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["02_train", "04_finetune_archive"])
def test_notebook_runs_without_project_data(name, tmp_path, monkeypatch):
    """A user's clone has no ../shared: the notebook trains on the synthetic folder it makes itself."""
    run_notebook(REPO / "nbs" / f"{name}.ipynb", tmp_path, monkeypatch, with_data=False)
    assert any((tmp_path / "repo" / "nbs").rglob("scene_*.jpg")), "the synthetic stand-in photos were not made"
