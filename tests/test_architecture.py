"""The layout's rules, checked on the source: imports go one way (command lines -> training / inference ->
models / data -> core), nothing imports a command-line module or a developer tool, and no module imports itself
back through others (docs/architecture.md draws the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lower number = lower layer; a module may import its own layer or lower ones, never a higher one.
LAYERS = {
    "detector.core": 0,
    "detector.data": 1,
    "detector.models": 1,
    "detector.classify": 1,
    "detector.evaluation": 1,
    "detector.inference": 2,
    "detector.training": 3,
}
CLI_MODULES = {
    f"detector.{name}"
    for name in ("train", "evaluate", "predict", "proposals", "weights", "augment", "bench", "ladder", "cli", "export")
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_imports(path: Path) -> set[str]:
    """The ``detector`` / ``api`` modules a file imports, anywhere in it (``from x import y``: x, or x.y when that
    is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in ("detector", "api") and _is_module(m)}


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def layer(module: str) -> int | None:
    return next((n for prefix, n in LAYERS.items() if module == prefix or module.startswith(prefix + ".")), None)


def library_files() -> dict[str, Path]:
    files = {module_name(p): p for p in (ROOT / "detector").rglob("*.py")}
    return {m: p for m, p in files.items() if layer(m) is not None}


def test_imports_go_down_the_layers_and_never_reach_a_cli_a_tool_or_the_service():
    wrong = []
    for module, path in library_files().items():
        for target in our_imports(path):
            if target in CLI_MODULES or target.startswith(("detector.tools", "api")):
                wrong.append(f"{module} imports {target}")
            elif layer(target) is not None and layer(target) > layer(module):
                wrong.append(f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    files = {module_name(p): p for p in [*(ROOT / "detector").rglob("*.py"), *(ROOT / "api").rglob("*.py")]}
    graph = {m: {t for t in our_imports(p) if t in files and t != m} for m, p in files.items()}
    # A package's __init__ re-exporting its modules is not a cycle of the modules themselves.
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                cycles.append(" -> ".join([*stack[stack.index(t) :], t]))
            elif t not in state:
                visit(t, [*stack, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The rules above can fail: a core module that imports training is reported."""
    bad = ROOT / "detector" / "core" / "_architecture_probe.py"
    bad.write_text("from detector.training import trainer\n")
    try:
        assert "detector.training.trainer" in our_imports(bad)
        assert layer("detector.core._architecture_probe") < layer("detector.training.trainer")
    finally:
        bad.unlink()
