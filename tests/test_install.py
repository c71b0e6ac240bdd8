"""A plain install with the machine's own pip works: every dependency is declared and pinned."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "kb", "indexer", "webapp")
# Run inside the fresh venv: import every module of the installed packages.
IMPORT_CHECK = """
import importlib, pkgutil, sys
failed = []
for package in {packages!r}:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if ".migrations" in info.name:  # Alembic scripts, run by Alembic inside a migration
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append(f"{{info.name}}: {{type(exc).__name__}}: {{exc}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {_requirement_name(r) for r in project["dependencies"]}


def _imported_top_level_modules() -> set[str]:
    names = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES)


def test_every_module_the_code_imports_comes_from_a_declared_dependency():
    owners = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = {
        module: owners.get(module) for module in _imported_top_level_modules()
        if not {d.lower().replace("_", "-") for d in owners.get(module, [module])} & declared
    }
    assert undeclared == {}, "declare these in pyproject.toml (and pin them in constraints.txt)"


def test_constraints_pin_every_declared_dependency():
    pinned = {
        _requirement_name(line) for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _declared() | {_requirement_name(r) for r in project["optional-dependencies"]["test"]}
    assert wanted - pinned == set()
    assert all("==" in line for line in (REPO / "constraints.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#"))


@pytest.mark.slow
def test_a_fresh_venv_with_the_machines_pip_installs_and_imports_every_module(tmp_path):
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    venv = tmp_path / "venv"
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "-c", str(REPO / "constraints.txt")]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([*pip, "torch==2.13.0"], check=True, env=env, timeout=1200)
    subprocess.run([*pip, str(REPO)], check=True, env=env, timeout=1200, cwd=tmp_path)
    done = subprocess.run([str(venv / "bin" / "python"), "-c", IMPORT_CHECK.format(packages=PACKAGES)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    help_text = subprocess.run([str(venv / "bin" / "kb"), "--help"], capture_output=True, text=True,
                               env=env, cwd=tmp_path, timeout=300)
    assert help_text.returncode == 0 and "ingest" in help_text.stdout
