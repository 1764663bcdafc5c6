"""The package's layering, read from its source: no import cycles, and the shared floor
(config, storage, Ray, the run directory, networks, data, motion, video) imports no feature."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "deeplandscape"
FEATURES = ("deeplandscape.sample", "deeplandscape.demo", "deeplandscape.cli", "deeplandscape.invert",
            "deeplandscape.superres", "deeplandscape.evaluate", "deeplandscape.sweep", "deeplandscape.train.launch",
            "deeplandscape.train.loop")
FLOOR = ("deeplandscape.config", "deeplandscape.storage", "deeplandscape.raykit", "deeplandscape.runs",
         "deeplandscape.render", "deeplandscape.video", "deeplandscape.cli_args", "deeplandscape.nets", "deeplandscape.animate",
         "deeplandscape.data", "deeplandscape.train.checkpoint", "deeplandscape.train.schedule")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the package modules it imports, anywhere in the file (functions included)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    out: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            out[name].update(t for t in targets if t in modules and t != name)
    return out


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_cycles():
    graph = imports()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        seen[m] = 1
        for n in sorted(graph.get(m, ())):
            assert seen.get(n) != 1, "import cycle: " + " -> ".join(path[path.index(n):] + [n])
            if n not in seen:
                visit(n, path + [n])
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m, [m])


def test_the_floor_imports_no_feature():
    upward = sorted(f"{m} -> {t}" for m, targets in imports().items() if under(m, FLOOR)
                    for t in targets if under(t, FEATURES))
    assert upward == [], upward
