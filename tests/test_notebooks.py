"""The notebooks in nbs/ stay in step with the package: valid notebooks whose code compiles and whose
``from colorkit... import`` lines name things that exist."""

import ast
import importlib
import json
from pathlib import Path

import pytest

NBS = sorted((Path(__file__).resolve().parents[1] / "nbs").glob("*.ipynb"))


def _code(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text())
    assert nb["nbformat"] == 4 and nb["cells"], f"{nb_path.name}: not a v4 notebook with cells"
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
    assert len(NBS) >= 3


@pytest.mark.parametrize("nb_path", NBS, ids=[p.name for p in NBS])
def test_notebook_code_compiles_and_imports_exist(nb_path):
    for i, src in enumerate(_code(nb_path)):
        tree = ast.parse(src, filename=f"{nb_path.name}[cell {i}]")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("colorkit"):
                mod = importlib.import_module(node.module)
                missing = [a.name for a in node.names if a.name != "*" and not hasattr(mod, a.name)]
                assert not missing, f"{nb_path.name} cell {i}: {node.module} has no {missing}"


@pytest.mark.parametrize("nb_path", NBS, ids=[p.name for p in NBS])
def test_notebooks_are_committed_without_outputs(nb_path):
    nb = json.loads(nb_path.read_text())
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), \
        f"{nb_path.name}: clear the outputs before committing"
