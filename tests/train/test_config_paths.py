"""The data files a config names are checked before any expensive work: file corpora of every kind (also behind
'stream:' and in blends) and each subset path of a file mixture, local or on an fsspec filesystem; reading a
config imports neither seqio nor TensorFlow."""

import os
import subprocess
import sys

import fsspec
import pytest

from configs import base
from fot_jax.data.subsets import LONGLLAMA_SUBSETS
from fot_jax.train.config_paths import check_exist, referenced_paths
from fot_jax.train.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(task, **subset_paths):
  c = base.get_config()
  c.data.vocab = "byte"
  c.eval.every_steps = 0
  c.data.task = task
  for name, path in subset_paths.items():
    c.data.subset_paths[name] = path
  return c


@pytest.mark.parametrize("task", ["redpajama:{d}/rp/*.jsonl.zst", "stack:{d}/stack/*.parquet",
                                  "stream:redpajama:{d}/rp/*.jsonl.zst", "stdlib@0.5+stack:{d}/stack/*.parquet@0.5"])
def test_missing_file_corpus_is_named(tmp_path, task):
  config = _config(task.format(d=tmp_path))
  with pytest.raises(ConfigError, match=rf"config.data.task: no file matches '{tmp_path}/"):
    check_exist(config)
  for sub in ("rp", "stack"):
    (tmp_path / sub).mkdir()
  (tmp_path / "rp" / "a.jsonl.zst").write_bytes(b"x")
  (tmp_path / "stack" / "a.parquet").write_bytes(b"x")
  check_exist(config)


def test_every_longllama_subset_path_is_checked_naming_the_subset(tmp_path):
  names = [s.name for s in LONGLLAMA_SUBSETS]
  for name in names:
    (tmp_path / name).mkdir()
    (tmp_path / name / "part0.jsonl").write_text("{}\n")
  paths = {name: str(tmp_path / name / "*.jsonl") for name in names}
  check_exist(_config("mixture:longllama", **paths))
  assert ("data.subset_paths.book", paths["book"]) in referenced_paths(_config("mixture:longllama", **paths))
  with pytest.raises(ConfigError, match=rf"config.data.subset_paths.book: no file matches '{tmp_path}/nope/"):
    check_exist(_config("mixture:longllama", **{**paths, "book": str(tmp_path / "nope" / "*.jsonl")}))
  with pytest.raises(ConfigError, match=r"config.data.subset_paths.wikipedia: expected a path or glob"):
    check_exist(_config("mixture:longllama", **{**paths, "wikipedia": ""}))
  check_exist(_config("stdlib", book=str(tmp_path / "nope" / "*.jsonl")))  # not read by this task: not checked


def test_remote_subset_paths_are_listed_through_fsspec(tmp_path):
  names = [s.name for s in LONGLLAMA_SUBSETS]
  mem = fsspec.filesystem("memory")
  for name in names:
    mem.pipe_file(f"/cfgcheck/{name}/part0.jsonl", b"{}\n")
  paths = {name: f"memory://cfgcheck/{name}/*.jsonl" for name in names}
  check_exist(_config("mixture:longllama", **paths))
  assert not any(f.startswith("data.subset_paths") for f, _ in referenced_paths(_config("mixture:longllama",
                                                                                         **paths)))
  with pytest.raises(ConfigError, match=r"config.data.subset_paths.arxiv: no file matches 'memory://cfgcheck/x/"):
    check_exist(_config("mixture:longllama", **{**paths, "arxiv": "memory://cfgcheck/x/*.jsonl"}))


def test_reading_a_config_imports_neither_seqio_nor_tensorflow():
  code = ("import sys; from configs import base; base.get_config(); "
          "print(sorted(m for m in ('seqio', 'tensorflow', 'fot_jax.data.tasks') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
  assert out.stdout.strip() == "[]", out.stdout + out.stderr
