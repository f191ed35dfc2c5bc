"""launch.experiment: run and evaluation specs, the dependency graph, and a whole experiment with stand-in
trainer and evaluator commands."""

import json
import os
import subprocess
import sys

import pytest

from fot_jax.launch import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_run_specs_parse_names_parents_and_flags():
  r = experiment.parse_run("ft_d1<pre=configs/x.py:d1 --config.num_steps=10 --config.fot.mix='0:0,1:0'")
  assert (r.name, r.parent, r.config) == ("ft_d1", "pre", "configs/x.py:d1")
  assert r.flags == ["--config.num_steps=10", "--config.fot.mix=0:0,1:0"]
  assert experiment.parse_run("pre=configs/x.py").parent is None
  for bad in ("noconfig", "a<=c.py", "=c.py", "a b=c.py", "a="):
    with pytest.raises(ValueError, match="--run"):
      experiment.parse_run(bad)


def test_eval_specs_default_to_every_run_and_the_task_as_tag():
  e = experiment.parse_eval("distraction --corpus=repeat:random:64:32x4 --context_length=32")
  assert (e.pattern, e.tag, e.args[0]) == ("*", "distraction", "distraction")
  e = experiment.parse_eval("dl_*:nomem=dict_lookup --mem_layers=")
  assert (e.pattern, e.tag, e.args) == ("dl_*", "nomem", ["dict_lookup", "--mem_layers="])
  with pytest.raises(ValueError, match="TASK"):
    experiment.parse_eval("x=--flag")


def test_graph_errors_name_the_problem():
  runs = [experiment.parse_run(s) for s in ("a<b=c.py", "b<a=c.py")]
  with pytest.raises(ValueError, match="cycle"):
    experiment.check_graph(runs)
  with pytest.raises(ValueError, match="no run is named 'z'"):
    experiment.check_graph([experiment.parse_run("a<z=c.py")])
  with pytest.raises(ValueError, match="duplicate"):
    experiment.check_graph([experiment.parse_run("a=c.py"), experiment.parse_run("a=d.py")])


def _fake_trainer(tmp_path, monkeypatch, fail: str = ""):
  """Stand-ins for `fot_jax.train` and `fot_jax.evaluate`: the trainer writes metrics and a checkpoint dir and
  records init_from (failing for the run named `fail`); the evaluator writes an r_d result."""
  train, evaluate = tmp_path / "fake_train.py", tmp_path / "fake_evaluate.py"
  train.write_text(f"""
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
wd = args["workdir"]
if os.path.basename(wd) == {fail!r}:
  sys.exit(3)
os.makedirs(os.path.join(wd, "checkpoints", "7"), exist_ok=True)
with open(os.path.join(wd, "metrics.jsonl"), "w") as f:
  f.write(json.dumps({{"kind": "train", "step": 7, "loss": 1.5, "init_from": args.get("config.init_from", "")}}))
""")
  evaluate.write_text("""
import json, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
json.dump({"contexts": [2, 4], "layers": {"1": {"r": [0.75, 0.5]}}}, open(args["out"], "w"))
""")
  monkeypatch.setattr(experiment, "TRAIN_COMMAND", [sys.executable, str(train)])
  monkeypatch.setattr(experiment, "EVAL_COMMAND", [sys.executable, str(evaluate)])


def test_experiment_runs_children_after_parents_and_summarises(tmp_path, monkeypatch):
  _fake_trainer(tmp_path, monkeypatch)
  runs = tmp_path / "runs"
  rc = experiment.main([f"--runs={runs}", "--parallel=2", "--run=pre=c.py:pre", "--run=ft<pre=c.py:ft",
                   "--run=other=c.py:x", "--eval=ft=distraction --context_length=32"])
  assert rc == 0
  ft = json.loads((runs / "ft" / "metrics.jsonl").read_text())
  assert ft["init_from"] == str(runs / "pre")
  assert json.loads((runs / "pre" / "metrics.jsonl").read_text())["init_from"] == ""
  assert (runs / "ft.distraction.json").exists() and not (runs / "pre.distraction.json").exists()
  text = (runs / "summary.txt").read_text()
  assert "distraction: L1 2:0.750 4:0.500" in text


def test_a_failed_parent_skips_its_children_and_the_experiment_exits_nonzero(tmp_path, monkeypatch):
  _fake_trainer(tmp_path, monkeypatch, fail="pre")
  runs = tmp_path / "runs"
  assert experiment.main([f"--runs={runs}", "--run=pre=c.py", "--run=ft<pre=c.py"]) == 1
  assert not (runs / "ft").exists()
  assert "skipped" in (runs / "summary.txt").read_text()


def test_bad_specs_exit_2_before_any_run(tmp_path):
  out = subprocess.run([sys.executable, "-m", "fot_jax.launch.experiment", f"--runs={tmp_path / 'r'}",
                        "--run=a<zz=c.py"], capture_output=True, text=True)
  assert out.returncode == 2 and "no run is named 'zz'" in out.stderr
  assert not (tmp_path / "r").exists()


def test_a_manifest_runs_its_runs_and_a_comparison_after_the_results_it_reads(tmp_path, monkeypatch):
  _fake_trainer(tmp_path, monkeypatch)
  manifest = tmp_path / "claim.py"
  manifest.write_text(
      'RUNS = ["pre=c.py:pre", "ft<pre=c.py:ft"]\n'
      'EVALS = ["*:plain=distraction", "ft:both=distraction --compare=pre={runs}/pre.plain.json '
      '--compare=self={runs}/{name}.plain.json"]\n')
  compare_log = tmp_path / "compare.log"
  checker = tmp_path / "fake_evaluate_compare.py"
  checker.write_text(f"""
import json, os, sys
args = [a for a in sys.argv[1:] if a.startswith("--compare=")]
with open({str(compare_log)!r}, "a") as f:
  for a in args:
    path = a.split("=", 2)[2]
    f.write(f"{{path}} {{os.path.exists(path)}}\\n")
out = [a for a in sys.argv[1:] if a.startswith("--out=")][0][len("--out="):]
json.dump({{"contexts": [2], "layers": {{"1": {{"r": [0.5]}}}}}}, open(out, "w"))
""")
  monkeypatch.setattr(experiment, "EVAL_COMMAND", [sys.executable, str(checker)])
  runs = tmp_path / "runs"
  assert experiment.main([f"--runs={runs}", f"--manifest={manifest}", "--parallel=3"]) == 0
  assert compare_log.read_text().splitlines() == [f"{runs}/pre.plain.json True", f"{runs}/ft.plain.json True"]
  assert (runs / "ft.both.json").exists() and not (runs / "pre.both.json").exists()


@pytest.mark.parametrize("text, message", [("RUNS = []", "EVALS"), ("RUNS = 'a=c.py'\nEVALS = []", "RUNS")])
def test_a_malformed_manifest_is_named(tmp_path, text, message):
  manifest = tmp_path / "bad.py"
  manifest.write_text(text)
  with pytest.raises(ValueError, match=f"bad.py: expected {message}"):
    experiment.load_manifest(str(manifest))
  with pytest.raises(ValueError, match="no manifest file"):
    experiment.load_manifest(str(tmp_path / "missing.py"))


def _fake_seeded(tmp_path, monkeypatch):
  """A trainer that records its seed and init_from, and an evaluator whose layer-1 r_d at d=2 passes a focus gate
  of 1.3 only for seeds >= 1000 (a retry)."""
  train, evaluate = tmp_path / "fake_train.py", tmp_path / "fake_evaluate.py"
  train.write_text("""
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
os.makedirs(os.path.join(args["workdir"], "checkpoints", "7"), exist_ok=True)
with open(os.path.join(args["workdir"], "metrics.jsonl"), "w") as f:
  f.write(json.dumps({"kind": "train", "step": 7, "loss": 1.5, "seed": int(args.get("config.seed", 0)),
                      "init_from": args.get("config.init_from", "")}))
""")
  evaluate.write_text("""
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
seed = json.loads(open(os.path.join(args["checkpoint"], "metrics.jsonl")).read())["seed"]
r = 0.9 if seed >= 1000 else 0.4
json.dump({"task": "distraction", "contexts": [2], "layers": {"1": {"r": [r]}}}, open(args["out"], "w"))
""")
  monkeypatch.setattr(experiment, "TRAIN_COMMAND", [sys.executable, str(train)])
  monkeypatch.setattr(experiment, "EVAL_COMMAND", [sys.executable, str(evaluate)])


GATED = ('RUNS = ["pre=configs/experiments/tiny_fot.py:quick --config.seed=3", '
         '"ft<pre=configs/experiments/tiny_fot.py:quick"]\n'
         'EVALS = ["pre:focus=distraction"]\n'
         'GATES = ["pre:focus=--layer=1 --d=2 --min_focus=1.3"]\n')


def test_a_gated_run_retries_with_a_new_seed_and_its_children_start_from_the_attempt_that_passed(
    tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  _fake_seeded(tmp_path, monkeypatch)
  manifest = tmp_path / "gated.py"
  manifest.write_text(GATED + 'ATTEMPTS = 3\nREPORTS = ["fot_jax.eval.focus_gate {runs}/pre.retry1.focus.json '
                      '--layer=1 --d=2"]\n')
  runs = tmp_path / "runs"
  assert experiment.main([f"--runs={runs}", f"--manifest={manifest}"]) == 0
  seed_of = lambda name: json.loads((runs / name / "metrics.jsonl").read_text())  # noqa: E731
  assert seed_of("pre")["seed"] == 3 and seed_of("pre.retry1")["seed"] == 1003
  assert not (runs / "pre.retry2").exists()
  assert seed_of("ft")["init_from"] == str(runs / "pre.retry1")
  assert "focus_gate: pass" in (runs / "summary.txt").read_text()  # the report ran


def test_a_run_that_never_passes_its_gate_skips_its_children(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  _fake_seeded(tmp_path, monkeypatch)
  manifest = tmp_path / "gated.py"
  manifest.write_text(GATED)  # one attempt: the seed-3 run fails its gate
  runs = tmp_path / "runs"
  assert experiment.main([f"--runs={runs}", f"--manifest={manifest}"]) == 1
  assert (runs / "pre").exists() and not (runs / "ft").exists()
  (tmp_path / "bad.py").write_text(GATED.replace("pre:focus=--layer", "pre:nope=--layer"))
  with pytest.raises(ValueError, match="no evaluation tagged 'nope' selects run pre"):
    experiment.main([f"--runs={runs}", f"--manifest={tmp_path / 'bad.py'}", "--debug"])
