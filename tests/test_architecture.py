"""The shape of the code: import direction, no cycles, module and class sizes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "agilecls"
#: Modules that define or assemble estimators; everything below them must not import them.
ESTIMATOR_MODULES = {"agilecls.lm.classifier", "agilecls.encoders.classifier", "agilecls.encoders.members",
                     "agilecls.ensemble"}
#: The top: commands, the web app, the loop, and the recipes and distillation that compose estimators
#: may import anything.
TOP = ("agilecls.cli", "agilecls.server", "agilecls.loop", "agilecls.recipes", "agilecls.distillation")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_target(node: ast.ImportFrom, package: str) -> str | None:
    """The absolute module a ``from ... import`` reads, relative levels resolved against ``package``."""
    if not node.level:
        return node.module
    base = package
    for _ in range(node.level - 1):
        base = base.rsplit(".", 1)[0]
    return f"{base}.{node.module}" if node.module else base


def imports_of(path: Path) -> set[str]:
    """Every agilecls module ``path`` imports at run time, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: never imported at run time
            continue
        if isinstance(node, ast.ImportFrom):
            target = import_target(node, package)
            if target and target.startswith("agilecls"):
                for alias in node.names:  # `from . import saving` names a module
                    candidate = f"{target}.{alias.name}"
                    found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("agilecls"))
    return {m for m in found if m in MODULES} - {name}


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p) for p in FILES}
GRAPH = {module_name(p): imports_of(p) for p in FILES}


def test_no_import_cycles():
    state: dict[str, int] = {}

    def visit(module, stack):
        state[module] = 1
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, stack + [dep])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_lower_layers_never_import_estimators():
    offenders = {m: sorted(GRAPH[m] & ESTIMATOR_MODULES) for m in GRAPH
                 if m not in ESTIMATOR_MODULES and not m.startswith(TOP) and m != "agilecls"
                 and GRAPH[m] & ESTIMATOR_MODULES}
    assert offenders == {}


def test_importing_persistence_imports_no_estimator_and_no_torch():
    code = ("import sys, agilecls.persistence as p; "
            "print(sorted(m for m in sys.modules if m.startswith(('agilecls', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["agilecls", "agilecls.atomic", "agilecls.jsonsafe", "agilecls.persistence",
                         "agilecls.registry"]


def test_load_classifier_finds_registered_estimators():
    code = ("import sys; from agilecls.persistence import estimator_class; "
            "print(estimator_class('EncoderClassifier').__module__, 'agilecls.lm.classifier' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["agilecls.encoders.classifier", "False"]  # only the estimator that was asked for is imported


def code_lines(node: ast.ClassDef) -> int:
    """Lines of a class without its docstrings (numpydoc parameter lists are long by design)."""
    docs = sum(n.body[0].end_lineno - n.body[0].lineno + 1 for n in ast.walk(node)
               if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.body and isinstance(n.body[0], ast.Expr)
               and isinstance(n.body[0].value, ast.Constant) and isinstance(n.body[0].value.value, str))
    return node.end_lineno - node.lineno + 1 - docs


def test_modules_and_classes_stay_small():
    """Modules up to 400 lines; classes up to 250 lines of code (the estimators about 200)."""
    too_long = {module_name(p): n for p in FILES if (n := len(p.read_text().splitlines())) > 400}
    big_classes = {}
    for p in FILES:
        for node in ast.walk(ast.parse(p.read_text())):
            limit = 210 if node.__class__ is ast.ClassDef and node.name.endswith("Classifier") else 250
            if isinstance(node, ast.ClassDef) and code_lines(node) > limit:
                big_classes[f"{module_name(p)}.{node.name}"] = code_lines(node)
    assert too_long == {} and big_classes == {}


@pytest.mark.parametrize("module", ["agilecls.lm.config", "agilecls.lm.prompts", "agilecls.evaluation.metrics",
                                    "agilecls.datasets", "agilecls.persistence", "agilecls.runtime",
                                    "agilecls.validation", "agilecls.encoders.members"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_names(tree: ast.Module) -> set[str]:
    """The private names a module defines: functions, classes, variables and attributes it assigns."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if is_private(n)}


def private_uses(path: Path, defined: dict[str, set[str]]) -> set[tuple[str, str]]:
    """``(module, "other.module._name")`` for each private member of another agilecls module that
    ``path`` imports, or reads as an attribute of anything but ``self``, ``cls`` or ``super()``. A
    private module (``agilecls._compat``) is the package's own and may be imported."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = import_target(node, package)
            if target and target.startswith("agilecls"):
                found |= {(name, f"{target}.{a.name}") for a in node.names
                          if is_private(a.name) and f"{target}.{a.name}" not in MODULES}
        elif isinstance(node, ast.Attribute) and is_private(node.attr) and node.attr not in defined[name]:
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                continue
            where = sorted(m for m, names in defined.items() if node.attr in names)
            if where:
                found.add((name, f"{'|'.join(where)}.{node.attr}"))
    return found


def test_no_module_uses_another_modules_private_members():
    """A name starting with one underscore is its module's own: no other module imports it or reads
    it off an object (dunders excepted)."""
    defined = {module_name(p): private_names(ast.parse(p.read_text(encoding="utf-8"))) for p in FILES}
    uses = set().union(*(private_uses(p, defined) for p in FILES))
    assert uses == set(), f"private members used from another module: {sorted(uses)}"
