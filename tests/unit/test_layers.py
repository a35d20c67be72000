"""Imports only go downward through the layers of DESIGN.md section 2."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "domaintune"
# Lower number = lower layer. A module may import its own layer or anything below it.
LAYERS = {
    "errors": 0,
    "config": 0,
    "data": 1,
    "models": 1,
    "runs": 1,
    "tasks": 2,
    "methods": 2,
    "objectives": 2,
    "training": 3,
    "evaluation": 3,
    "reports": 3,
    "deploy": 3,
    "api": 4,
    "launch": 4,
    "cli": 5,
    "ui": 5,
    "__init__": 5,
}
# evaluation.metrics is pure maths (sklearn/seqeval) that tasks need for their metrics.
ALLOWED = {("tasks", "evaluation")}


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_imports_only_go_down() -> None:
    problems = []
    for path in PACKAGE.rglob("*.py"):
        own = _layer(str(path.relative_to(PACKAGE).with_suffix("")).replace("/", "."))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("domaintune.")
            ):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("domaintune.")]
            for name in names:
                target = _layer(name.removeprefix("domaintune."))
                if LAYERS[target] > LAYERS[own] and (own, target) not in ALLOWED:
                    problems.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not problems, problems


def test_config_imports_only_pydantic_and_stdlib() -> None:
    allowed = {"pydantic", "yaml", "domaintune", "__future__", "typing", "difflib", "pathlib"}
    for path in (PACKAGE / "config").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                root = node.module.split(".")[0]
                assert root in allowed or root in {"collections", "dataclasses", "enum"}, (
                    path,
                    root,
                )
