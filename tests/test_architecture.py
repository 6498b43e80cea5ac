"""Project-level promises: import boundaries, module sizes, no cycles, and the README examples."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("estimators", "feeders", "flows")
MAX_MODULE_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import statement, nested ones included."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module
            found.append((target, [a.name for a in node.names], node.lineno))
    return found


MODULES = _modules()


def test_feeders_never_import_estimators_or_flows():
    bad = [
        f"{name}:{line} imports {target}"
        for name, path in MODULES.items()
        if name.split(".")[0] == "feeders"
        for target, _, line in _imports(path, name)
        if target.split(".")[0] in ("estimators", "flows")
    ]
    assert not bad, bad


def test_estimators_and_feeders_never_import_prefect_or_mlflow_even_lazily():
    bad = [
        f"{name}:{line} imports {target}"
        for name, path in MODULES.items()
        if name.split(".")[0] in ("estimators", "feeders")
        for target, _, line in _imports(path, name)
        if target.split(".")[0] in ("prefect", "mlflow", "flows")
    ]
    assert not bad, bad


def test_importing_estimators_and_feeders_loads_neither_prefect_nor_mlflow():
    code = (
        "import sys, estimators, feeders, estimators.monitors, estimators.demo\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'mlflow'))\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=env)


def test_no_package_imports_another_packages_private_names_or_modules():
    bad = []
    for name, path in MODULES.items():
        own = name.split(".")[0]
        for target, names, line in _imports(path, name):
            if target.split(".")[0] not in PACKAGES or target.split(".")[0] == own:
                continue
            private_module = any(part.startswith("_") for part in target.split(".")[1:])
            private_names = [n for n in names if n.startswith("_")]
            if private_module or private_names:
                bad.append(f"{name}:{line} from {target} import {names}")
    assert not bad, bad


def test_other_packages_use_only_the_public_names_of_feeders_and_estimators():
    import estimators
    import feeders

    public = {"feeders": set(feeders.__all__), "estimators": set(estimators.__all__)}
    bad = []
    for name, path in MODULES.items():
        own = name.split(".")[0]
        for target, names, line in _imports(path, name):
            if target in public and target != own:
                bad += [f"{name}:{line} {target}.{n}" for n in names if n not in public[target]]
            elif target.split(".")[0] == "feeders" and own != "feeders":
                bad.append(f"{name}:{line} imports {target} instead of `from feeders import ...`")
    assert not bad, bad


def test_no_module_is_over_500_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}


def test_there_is_no_import_cycle():
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, names, _ in _imports(path, name):
            if target.split(".")[0] not in PACKAGES:
                continue
            for imported in names or [None]:
                submodule = f"{target}.{imported}" if imported else None
                dest = submodule if submodule in MODULES else target
                if dest in MODULES and dest != name:
                    graph[name].add(dest)
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dest in sorted(graph[node]):
            if state.get(dest) == 1:
                return [*stack[stack.index(dest) :], dest]
            if dest not in state:
                found = visit(dest)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_check_can_fail():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def _docstrings(path: Path) -> list[str]:
    """The module's, classes' and functions' docstrings (string literals in code name other things:
    artifact files a run writes, for instance)."""
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    nodes = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, kinds)]
    return [doc for doc in map(ast.get_docstring, nodes) if doc]


def test_docstrings_cite_only_files_of_this_repository():
    cited = re.compile(r"\b([\w./-]+\.(?:md|py|toml|yaml|yml|txt))\b")
    missing = []
    for name, path in MODULES.items():
        for match in cited.finditer("\n".join(_docstrings(path))):
            ref = match.group(1)
            if "/" not in ref and not ref.endswith(".md"):
                continue  # a bare module file name (`model.py`) in an example
            if not any((base / ref).exists() for base in (ROOT, path.parent)):
                missing.append(f"{name}: {ref}")
    assert not missing, missing


def _readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


@pytest.mark.slow
def test_readme_python_examples_run_as_written(tmp_path):
    blocks = _readme_blocks()
    assert len(blocks) >= 3, "README.md has the seed-style, monitor and canned examples"
    code = "\n\n".join(blocks).replace("/tmp/", f"{tmp_path}/")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'global_step': 300" in result.stdout
