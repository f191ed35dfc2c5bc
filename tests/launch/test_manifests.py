"""Every reproduction manifest in experiments/ is runnable as written: its runs form a graph, its configs,
variants and override keys exist, each evaluation names a task and selects a run, and every result file a
comparison reads is one the manifest produces."""

import fnmatch
import glob
import importlib.util
import os
import re

import pytest

from fot_jax import evaluate
from fot_jax.launch import experiment
from fot_jax.train import config_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py")))


def test_there_are_manifests_for_the_claims():
  names = {os.path.basename(m)[:-3] for m in MANIFESTS}
  assert {"passkey", "code"} <= names, names


def _overrides(flags):
  return dict(f[len("--config."):].split("=", 1) for f in flags if f.startswith("--config."))


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_a_manifest_is_runnable_as_written(path, monkeypatch):
  monkeypatch.chdir(ROOT)
  manifest = experiment.load_manifest(path)
  runs = [experiment.parse_run(s) for s in manifest.runs]
  evals = [experiment.parse_eval(s) for s in manifest.evals]
  experiment.check_graph(runs)
  experiment.check_gates([experiment.parse_gate(s) for s in manifest.gates], runs, evals)
  for report in manifest.reports:  # a module of this package that exists
    assert importlib.util.find_spec(report.split()[0]) is not None, report
  for run in runs:
    assert set(run.flags) == {f for f in run.flags if f.startswith("--config.")}, run.flags
    config_file.load_config(run.config, _overrides(run.flags))  # file, variant and override keys exist
  for e in evals:
    assert e.args[0] in evaluate.TASKS, e.args[0]
    assert any(fnmatch.fnmatchcase(r.name, e.pattern) for r in runs), f"{e.pattern!r} selects no run"
  produced = set()
  for run in runs:  # the order the orchestrator evaluates in: run by run, each run's evaluations in order
    for e in (e for e in evals if fnmatch.fnmatchcase(run.name, e.pattern)):
      for read in re.findall(r"\{runs\}/([^ ]+\.json)", " ".join(e.args)):
        assert read.replace("{name}", run.name) in produced, (run.name, e.tag, read)
      produced.add(f"{run.name}.{e.tag}.json")
