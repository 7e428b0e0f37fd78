"""Sphinx roles in colorkit's docstrings, for mkdocstrings.

The docstrings cite code with Sphinx roles (``:func:`colorize_dls```, ``:class:`~colorkit.io.ImageLoadError```).
mkdocstrings renders Markdown, where such a role would print as ``:func:`` and a code span. This griffe extension
(mkdocs.yml loads it) turns every role into a cross-reference that mkdocs-autorefs resolves against the API page
(docs/api.md), or into plain code for targets outside colorkit's public API (``pathlib.Path``, a private helper).

A role whose target does not exist (a renamed function, a typo) is a **broken reference**: the extension logs a
warning, which ``mkdocs build --strict`` turns into a failed build (tests/test_docs.py builds the docs that way).
:func:`broken_references` runs the same check without mkdocs.

Targets resolve as Sphinx resolves them: a dotted path from the top (``colorkit.models.ColorizerNet``), a path
relative to the package (``.blocks``), or a name seen from where the docstring is (the class's members, then the
module's names, then builtins). The link goes to the object's canonical path (where it is defined, or the public
module that re-exports it from a private one), which is where the API page renders it.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import inspect
import logging
import pkgutil
import re
import types
import warnings
from collections.abc import Iterator
from typing import Any

import griffe

__all__ = ["ROLE", "SphinxRoles", "broken_references", "resolve", "rewrite"]

ROLE = re.compile(r"(?::py)?:(mod|func|data|const|class|meth|attr|exc|obj):`([^`]+)`")
"""A Sphinx cross-reference role: ``:kind:`target```."""

_log = logging.getLogger("mkdocs.plugins.colorkit.griffe_roles")  # mkdocs --strict counts its warnings
_MISSING = object()


def _getattr_path(obj: Any, parts: list[str]) -> Any:
    for part in parts:
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _import_path(dotted: str) -> tuple[Any, str] | None:
    """``dotted`` as module + attributes: (object, canonical path) or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            module = _import(name)
        except ImportError:
            continue
        obj = _getattr_path(module, parts[i:])
        return None if obj is _MISSING else (obj, _canonical(obj, dotted))
    return None


def _canonical(obj: Any, found_as: str) -> str:
    """Where ``obj`` is documented: where it is defined (``module.qualname``) for functions, classes and modules,
    unless that is a private module (then where it was found, e.g. re-exported by a public one); else ``found_as``."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, property):
        obj = obj.fget
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if (inspect.isclass(obj) or inspect.isroutine(obj)) and module and qualname and "<" not in qualname:
        defined = f"{module}.{qualname}"
        if not any(p.startswith("_") for p in module.split(".")) or any(p.startswith("_") for p in found_as.split(".")):
            return defined
    return found_as


def _import(name: str) -> types.ModuleType:
    """``importlib.import_module`` without the warnings third-party imports print (fastai, pandas)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def resolve(target: str, module: str, cls: str | None = None) -> tuple[Any, str] | None:
    """Resolve a role's ``target`` as written in ``module`` (inside class ``cls``, a qualname): the object and its
    canonical dotted path, or None when it does not exist."""
    target = target.strip().lstrip("~").removesuffix("()")
    if target.startswith("."):  # relative to the package the docstring is in
        mod = _import(module)
        package = module if hasattr(mod, "__path__") else module.rpartition(".")[0]
        target = importlib.util.resolve_name(target, package)
    found = _import_path(target) if "." in target else None
    if found is not None:
        return found
    first, *rest = target.split(".")
    scopes: list[tuple[Any, str]] = []
    mod = _import(module)
    if cls:
        owner = _getattr_path(mod, cls.split("."))
        if owner is not _MISSING:
            scopes.append((owner, f"{module}.{cls}"))
    scopes += [(mod, module), (builtins, "builtins")]
    for scope, prefix in scopes:
        obj = _getattr_path(scope, [first, *rest])
        if obj is not _MISSING:
            return obj, _canonical(obj, f"{prefix}.{target}")
    return None


def _is_public(path: str) -> bool:
    """A colorkit name the API page renders: every part public, and the name in its module's ``__all__``."""
    parts = path.split(".")
    if parts[0] != "colorkit" or any(p.startswith("_") for p in parts):
        return False
    for i in range(len(parts) - 1, 0, -1):  # the longest module prefix
        try:
            module = _import(".".join(parts[:i]))
        except ImportError:
            continue
        return parts[i] in getattr(module, "__all__", ())
    return True  # the package itself


def rewrite(text: str, module: str, cls: str | None = None, where: str = "") -> tuple[str, list[str]]:
    """``text`` with its roles as Markdown (autorefs links to public colorkit names, code otherwise), and the
    targets that did not resolve."""
    broken: list[str] = []

    def one(m: re.Match) -> str:
        kind, target = m.group(1), m.group(2).strip()
        shown = target.lstrip("~")
        if target.startswith("~"):
            shown = shown.rsplit(".", 1)[-1]
        if kind in ("func", "meth") and not shown.endswith("()"):
            shown += "()"
        found = resolve(target, module, cls)
        if found is None:
            broken.append(target)
            return f"`{shown}`"
        _, path = found
        return f"[`{shown}`][{path}]" if _is_public(path) else f"`{shown}`"

    return ROLE.sub(one, text), broken


def _location(obj: griffe.Object) -> tuple[str, str | None]:
    """(module path, class qualname or None) of a griffe object, for resolving names seen from it."""
    module = obj.module.path if not obj.is_module else obj.path
    owner = obj if obj.is_class else obj.parent
    classes = []
    while owner is not None and owner.is_class:
        classes.append(owner.name)
        owner = owner.parent
    return module, ".".join(reversed(classes)) or None


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring griffe loads; warn (failing ``mkdocs build --strict``) on broken ones."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is None or ":" not in obj.docstring.value:
            return
        module, cls = _location(obj)
        obj.docstring.value, broken = rewrite(obj.docstring.value, module, cls)
        for target in broken:
            _log.warning(f"{obj.path}: broken docstring reference {target!r} ({obj.relative_filepath})")


def _docstrings(package: str) -> Iterator[tuple[str, str, str | None, str]]:
    """(where, module, class qualname, docstring) for every module, class, function and method of ``package``."""
    root = _import(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")
                         if not m.name.endswith("__main__")]  # importing __main__ would run the program
    for name in names:
        module = _import(name)
        if module.__doc__:
            yield name, name, None, module.__doc__
        stack: list[tuple[Any, str | None]] = [(module, None)]
        while stack:
            scope, cls = stack.pop()
            for attr, obj in vars(scope).items():
                if isinstance(obj, (staticmethod, classmethod, property)):
                    obj = obj.__func__ if not isinstance(obj, property) else obj.fget
                if not (inspect.isclass(obj) or inspect.isfunction(obj)) or obj.__module__ != name:
                    continue
                qual = f"{cls}.{attr}" if cls else attr
                if obj.__doc__:
                    yield f"{name}.{qual}", name, (qual if inspect.isclass(obj) else cls), obj.__doc__
                if inspect.isclass(obj) and obj.__qualname__ == qual:
                    stack.append((obj, qual))


def broken_references(package: str = "colorkit") -> list[str]:
    """Every role in ``package``'s docstrings whose target does not exist, as ``"where: target"``."""
    out = []
    for where, module, cls, doc in _docstrings(package):
        out += [f"{where}: {t}" for t in rewrite(doc, module, cls)[1]]
    return out
