"""The layering of docs/architecture.md, checked on the source: what each layer may import, no import cycles
(function-level imports included), no module over 500 lines without a reason at its top, and no environment
variable read by product code to change its behaviour for tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("models", "vsr_pipeline", "workers")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Absolute names imported by ``path`` (relative imports resolved); with ``top_level_only`` only those
    executed at import time (not inside functions, nor under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                inner = True
            if top_level_only and inner:
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*up, base] if base else up)
                found.add(base)
                found.update(f"{base}.{a.name}" for a in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def _forbidden(module: str) -> tuple[str, ...]:
    if module.startswith("models"):
        return ("vsr_pipeline", "workers", "ray", "av")
    if module.startswith("vsr_pipeline.media"):
        return ("torch", "ray", "models", "workers")
    if module in ("vsr_pipeline.engine", "vsr_pipeline.scheduler", "vsr_pipeline.plan",
                  "vsr_pipeline.options"):
        return ("ray", "workers")
    return ()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers_import_only_what_they_may(module: str) -> None:
    bad = _forbidden(module)
    used = {name for name in _imports(MODULES[module], top_level_only=False)
            if name.split(".")[0] in {b.split(".")[0] for b in bad} and name.startswith(bad)}
    assert not used, f"{module} imports {sorted(used)} (docs/architecture.md: layers)"


def test_no_import_cycles() -> None:
    """Not even through imports inside functions (lazy imports keep start-up cheap, not cycles legal)."""
    graph = {m: {n for n in _imports(p, top_level_only=False) if n in MODULES and n != m}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if n.startswith(m + "."):  # a package importing its own submodules is not a cycle
                continue
            if state.get(n) == 1 and not m.startswith(n + "."):
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(n):], n]))
            if n not in state:
                walk(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small_or_say_why(module: str) -> None:
    text = MODULES[module].read_text()
    lines = text.count("\n")
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert lines <= 500 or "over 500 lines" in doc, f"{module}: {lines} lines and no reason at its top"


def test_product_code_reads_no_test_hooks_from_the_environment() -> None:
    """Faults are injected by test fixtures (tests/faults.py), never by variables product code reads."""
    for module, path in MODULES.items():
        assert "VSR_INJECT" not in path.read_text(), module
