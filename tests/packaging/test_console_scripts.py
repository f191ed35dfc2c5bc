"""The console scripts setup.py declares: each resolves to a function that prints its help and exits 0, the way
the installed `fot-*` wrapper calls it; an installed copy of the package declares the same scripts."""

import ast
import importlib.metadata
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMANDS = {"fot-train", "fot-eval", "fot-export", "fot-convert", "fot-compile-check", "fot-launch"}


def declared_scripts() -> dict[str, str]:
  """{name: 'module:function'} from setup.py's CONSOLE_SCRIPTS list (read as a literal, setup() is not run)."""
  with open(os.path.join(ROOT, "setup.py")) as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "CONSOLE_SCRIPTS" for t in node.targets):
      entries = ast.literal_eval(node.value)
      return {name.strip(): target.strip() for name, _, target in (e.partition("=") for e in entries)}
  raise AssertionError("setup.py defines no CONSOLE_SCRIPTS list")


def test_setup_declares_one_script_per_command():
  assert set(declared_scripts()) == COMMANDS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_script_prints_help_and_exits_0(name):
  module, _, function = declared_scripts()[name].partition(":")
  wrapper = (f"import sys; from {module} import {function} as f; sys.argv = [{name!r}, '--help']; "
             f"sys.exit(f())")  # what pip's generated fot-* script does
  env = {**os.environ, "PYTHONPATH": ROOT}
  done = subprocess.run([sys.executable, "-c", wrapper], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "usage" in done.stdout.lower() and "Traceback" not in done.stderr, done.stdout[-2000:]


def test_an_installed_package_declares_the_same_scripts():
  try:
    points = importlib.metadata.distribution("fot_jax").entry_points
  except importlib.metadata.PackageNotFoundError:
    pytest.skip("fot_jax is not installed (pip install -e .)")
  installed = {p.name: p.value for p in points if p.group == "console_scripts"}
  if not installed:
    pytest.skip("the installed fot_jax predates its console scripts: rerun pip install -e .")
  assert installed == declared_scripts()
