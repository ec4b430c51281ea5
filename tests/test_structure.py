"""The package's shape, checked on its source: short functions, no import cycle at import
time or later, model names only in the registry, one run-folder layout, and nothing below
the training engine importing it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import gankit
from gankit.models import IMPUTERS, MODELS

PACKAGE = Path(gankit.__file__).resolve().parent
MAX_FUNCTION_LINES = 50


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = set(modules())


def test_no_function_is_longer_than_fifty_lines():
    long = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} "
            f"({node.end_lineno - node.lineno + 1} lines)"
            for path in modules().values()
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "functions over 50 lines:\n" + "\n".join(long)


BELOW_TRAINING = ("gankit.models", "gankit.metrics", "gankit.data", "gankit.config",
                  "gankit.runtime", "gankit.files", "gankit.images", "gankit.errors",
                  "gankit.checkpoint_file", "gankit.progress")


def imports_anywhere(path: Path, name: str) -> set[str]:
    """Every gankit module (or name in one) `path` imports, at the top or inside a
    function, leaving out `if TYPE_CHECKING:` blocks."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from pkg import mod` imports the module; `from mod import name`, the module
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                         for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("gankit")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the gankit modules it imports, at the top or inside a function (not under
    `if TYPE_CHECKING`, which never runs)."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        graph[name] = {m for m in imports_anywhere(path, name) if m in mods and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():   # so that the next test can fail
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    """Not even through an import inside a function: each would make the import order matter."""
    assert cycles(import_graph()) == []


def test_model_names_appear_only_in_the_registry():
    """Outside gankit/models/ (where a model's file may name its own optimizers), no
    string is a model's name: code asks the registry."""
    names = set(MODELS) | set(IMPUTERS)
    named = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value!r}"
             for path in modules().values() if "models" not in path.relative_to(PACKAGE).parts
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and node.value in names]
    assert not named, "model names outside the registry:\n" + "\n".join(named)


def test_run_folder_files_are_named_only_by_run_paths():
    """RunPaths (training/run_folder.py) is the one place that joins a run folder's file
    names onto a path (`folder / "metrics.csv"`), so renaming one cannot break a reader."""
    joined = re.compile(r"/\s*[\"'](samples|checkpoints|tensorboard|metrics\.csv|config\.toml|"
                        r"loss\.png|eval\.json|held_out\.txt|\.lock|last\.json|"
                        r"last\.safetensors|checkpoints/last\.\w+)[\"']")
    found = [f"{path.relative_to(PACKAGE.parent)}:{i}: {line.strip()}"
             for path in modules().values() if path.name != "run_folder.py"
             for i, line in enumerate(path.read_text().splitlines(), 1)
             if joined.search(line) and "torch.hub" not in line]   # torch's own checkpoints/
    assert not found, "run-folder paths spelled outside RunPaths:\n" + "\n".join(found)


def test_nothing_below_the_engine_imports_it():
    """DESIGN.md: what models and metrics use (devices, threads, inference mode, the
    checkpoint file) lies below them, so no import runs from models/, metrics/, data/ or
    the small shared modules up into training/, not even inside a function."""
    up = [f"{name} imports {m}" for name, path in modules().items()
          if name.startswith(BELOW_TRAINING)
          for m in sorted(imports_anywhere(path, name)) if m.startswith("gankit.training")]
    assert not up, "\n".join(up)
