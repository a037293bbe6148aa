"""The module graph: data flows one way (conf -> plan -> data -> train -> sweep -> collect -> fit -> report), every
import, lazy ones included, points down, and no two modules import each other round a circle."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ladder"

# what each part may never import (lazily or not): the arrows that would run back up
FORBIDDEN = {
    "ladder.errors": ["ladder"],
    "ladder.io": ["ladder.rundir", "ladder.config", "ladder.data", "ladder.train", "ladder.fit", "ladder.sweep"],
    "ladder.rundir": ["ladder.train", "ladder.data", "ladder.fit", "ladder.sweep", "ladder.evals", "ladder.report",
                      "ladder.cli", "ladder.commands", "torch"],
    "ladder.config": ["ladder.train", "ladder.data", "ladder.fit", "ladder.sweep", "ladder.cli", "ladder.commands"],
    "ladder.model": ["ladder.train", "ladder.data", "ladder.evals", "ladder.fit", "ladder.sweep", "ladder.cli"],
    "ladder.data": ["ladder.train", "ladder.evals", "ladder.fit", "ladder.sweep", "ladder.report", "ladder.cli",
                    "ladder.commands", "ladder.plan"],
    "ladder.evals": ["ladder.train", "ladder.sweep", "ladder.fit", "ladder.cli", "ladder.commands"],
    "ladder.train": ["ladder.sweep", "ladder.fit", "ladder.report.ladder_page", "ladder.cli", "ladder.commands",
                     "ladder.demo"],
    "ladder.fit": ["ladder.train", "ladder.data", "ladder.sweep", "ladder.evals", "ladder.cli", "ladder.commands",
                   "ladder.demo", "torch"],
    "ladder.plan": ["ladder.train.loop", "ladder.sweep", "ladder.fit", "ladder.cli", "ladder.commands"],
    "ladder.sweep": ["ladder.cli", "ladder.commands", "ladder.demo"],
    "ladder.report": ["ladder.cli", "ladder.commands", "ladder.demo", "ladder.train", "ladder.sweep"],
    "ladder.api": ["ladder.train", "ladder.data", "ladder.sweep", "ladder.commands", "torch"],
    "ladder.distributed": ["ladder.train", "ladder.evals", "ladder.data", "ladder.fit", "ladder.sweep"],
    "ladder.device": ["ladder.train", "ladder.evals", "ladder.data", "ladder.fit", "ladder.sweep"],
    "ladder.design": ["ladder.train", "ladder.sweep", "ladder.commands", "torch"],
}
CLI = "ladder.cli"  # only parses and dispatches: nothing in the package imports it


def part_of(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name, found = module_name(path), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from ladder import io`
        graph[name] = found
    return graph


def test_no_import_runs_back_up():
    wrong = set()
    for module, targets in imports().items():
        banned = [b for part, bans in FORBIDDEN.items() if part_of(module, part) for b in bans]
        banned += [CLI] if module != CLI else []
        wrong |= {f"{module} imports {target}" for target in targets for b in banned
                  if part_of(target, b) and target != "ladder" and not part_of(target, module)}
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles():
    graph = imports()
    modules = set(graph)
    edges = {m: {t for t in targets if t in modules and t != m} for m, targets in graph.items()}
    # packages import their own modules (__init__ re-exports); a circle through a package's __init__ is not one
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in edges.items()}
    seen, stack, circles = set(), [], []

    def visit(module):
        if module in stack:
            circles.append(" -> ".join(stack[stack.index(module):] + [module]))
            return
        if module in seen:
            return
        seen.add(module)
        stack.append(module)
        for target in sorted(edges[module]):
            visit(target)
        stack.pop()

    for module in sorted(modules):
        visit(module)
    assert not circles, "\n".join(circles)


@pytest.mark.parametrize("module", ["ladder.rundir", "ladder.config", "ladder.plan", "ladder.fit.laws",
                                    "ladder.fit.forecast", "ladder.fit.collect", "ladder.fit.plots", "ladder.api",
                                    "ladder.data.prepare"])
def test_ground_floor_and_fit_side_never_load_torch(module):
    import subprocess
    import sys
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False", f"importing {module} loads torch"
