"""The package's layers: ``fireforge.hw`` (gateware, ISA, protocol, cycle model) stands alone;
``fireforge.sim`` and ``fireforge.boards`` build on it; ``fireforge.sw`` is on top. No module
imports one that imports it back."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hw", "sw", "sim", "boards")


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return "fireforge." + ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The fireforge modules ``path`` imports, at any depth (function-level imports too)."""
    me = _module(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n for n in names if n.startswith("fireforge.")}
    return out


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module(p): p for p in files}
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_hw_imports_neither_torch_nor_sw():
    code = ("import sys, pkgutil, importlib, fireforge.hw as hw\n"
            "for m in pkgutil.iter_modules(hw.__path__):\n"
            "    importlib.import_module(f'fireforge.hw.{m.name}')\n"
            "bad = sorted(n for n in sys.modules if n == 'torch' or n.startswith(('fireforge.sw',"
            " 'fireforge.sim', 'fireforge.boards')))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_layers_only_import_downwards():
    # (sim's testbenches compare with sw's golden model, the reference of every integer)
    allowed = {"hw": {"hw"}, "sim": {"hw", "sim", "sw"}, "boards": {"hw", "boards", "sim"},
               "sw": {"hw", "sw", "sim", "boards"}}
    wrong = [(m, i) for m, deps in _graph().items() for i in deps
             if i.split(".")[1] not in allowed[m.split(".")[1]]]
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()
    cycles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []
