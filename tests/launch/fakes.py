"""Fake `gcloud` and fake worker `python` executables for the TPU launcher tests.

The fake gcloud records every argv (one JSON list per line in $FAKE_GCLOUD_LOG) and simulates a TPU VM whose
workers are directories (<state>/worker_<i> acts as worker i's home): `scp --worker=all` copies into every
home, `ssh --worker=all --command=...` really runs the command with bash in every home (FOT_JAX_WORKER=i), so
the launcher's remote scripts are executed, not just compared as strings. The fake worker python no-ops
`pip install` and, for `-m fot_jax.train`, records its argv and exits with the code listed for that worker.
"""

from __future__ import annotations

import json
import os
import stat
import sys

FAKE_GCLOUD = r'''#!{python}
import json, os, shutil, subprocess, sys
state = os.environ["FAKE_GCLOUD_STATE"]
cfg = json.load(open(os.path.join(state, "config.json")))
with open(os.path.join(state, "calls.jsonl"), "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
flags = {{a.split("=", 1)[0]: a.split("=", 1)[1] if "=" in a else True for a in args if a.startswith("--")}}
pos = [a for a in args if not a.startswith("--")]
homes = [os.path.join(state, f"worker_{{i}}") for i in range(cfg["workers"])]
def selected():
  w = flags.get("--worker", "0")
  return list(range(len(homes))) if w == "all" else [int(w)]
if pos[:3] == ["compute", "tpus", "tpu-vm"] and pos[3] == "describe":
  print(json.dumps({{"state": cfg.get("state", "READY"),
                     "networkEndpoints": [{{"ipAddress": f"10.0.0.{{i}}"}} for i in range(len(homes))]}}))
  sys.exit(0)
if pos[:2] == ["compute", "tpus"] and pos[3] == "scp":
  src, dst = pos[4], pos[5]
  for i in selected():
    if ":" in dst:
      target = os.path.join(homes[i], dst.split(":", 1)[1])
      os.makedirs(os.path.dirname(target) or homes[i], exist_ok=True)
      shutil.copy(src, target)
    else:
      shutil.copy(os.path.join(homes[i], src.split(":", 1)[1]), dst)
  sys.exit(0)
if pos[:2] == ["compute", "tpus"] and pos[3] == "ssh":
  worst = 0
  for i in selected():
    os.makedirs(homes[i], exist_ok=True)
    env = dict(os.environ, HOME=homes[i], FOT_JAX_WORKER=str(i))
    proc = subprocess.run(["bash", "-c", flags["--command"]], cwd=homes[i], env=env, capture_output=True,
                          text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    worst = worst or proc.returncode
  sys.stdout.flush()
  sys.exit(worst)
if pos[:2] == ["storage", "ls"]:
  steps = cfg.get("checkpoint_steps", [])
  if not steps:
    sys.exit(1)
  for s in steps:
    print(pos[2] + str(s) + "/")
  sys.exit(0)
sys.exit(0)  # create / delete / anything else: recorded only
'''

FAKE_PYTHON = r'''#!{python}
import json, os, sys
state = os.environ["FAKE_GCLOUD_STATE"]
cfg = json.load(open(os.path.join(state, "config.json")))
if sys.argv[1:3] == ["-m", "pip"]:
  sys.exit(0)
if sys.argv[1:3] == ["-m", "fot_jax.train"]:
  worker = int(os.environ.get("FOT_JAX_WORKER", "0"))
  with open(os.path.join(state, f"train_worker_{{worker}}.json"), "w") as f:
    json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd(),
               "commit": open("COMMIT").read().strip()}}, f)
  print(f"training on worker {{worker}}")
  sys.exit(cfg.get("train_rc", {{}}).get(str(worker), 0))
sys.exit(3)
'''


def _write_exe(path: str, text: str) -> None:
  with open(path, "w") as f:
    f.write(text.format(python=sys.executable))
  os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class FakeCloud:
  """A fake TPU VM with `workers` workers; `calls()` lists the recorded gcloud argv lists."""

  def __init__(self, root: str, workers: int = 2, **config):
    self.root = root
    self.bin = os.path.join(root, "bin")
    self.state = os.path.join(root, "state")
    os.makedirs(self.bin, exist_ok=True)
    os.makedirs(self.state, exist_ok=True)
    _write_exe(os.path.join(self.bin, "gcloud"), FAKE_GCLOUD)
    self.python = os.path.join(self.bin, "worker-python")
    _write_exe(self.python, FAKE_PYTHON)
    self.configure(workers=workers, **config)

  def configure(self, **config) -> None:
    path = os.path.join(self.state, "config.json")
    current = json.load(open(path)) if os.path.exists(path) else {}
    current.update(config)
    with open(path, "w") as f:
      json.dump(current, f)

  def env(self, monkeypatch) -> None:
    monkeypatch.setenv("PATH", self.bin + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("FAKE_GCLOUD_STATE", self.state)

  def calls(self) -> list[list[str]]:
    path = os.path.join(self.state, "calls.jsonl")
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []

  def home(self, worker: int) -> str:
    return os.path.join(self.state, f"worker_{worker}")

  def train_call(self, worker: int) -> dict | None:
    path = os.path.join(self.state, f"train_worker_{worker}.json")
    return json.load(open(path)) if os.path.exists(path) else None
