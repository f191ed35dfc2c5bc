"""bench/bench_memory_layout.py: its three forms of the dense memory read agree, and bad flags name the flag."""

import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "bench_memory_layout.py")


def _bench():
  spec = importlib.util.spec_from_file_location("bench_memory_layout", _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_forms_agree_and_the_table_is_written(tmp_path):
  from fot_jax.model import memory_attention as ma
  out = tmp_path / "layout.json"
  table = _bench().main(["--slots=1k", "--queries=32,1", "--heads=2", "--head_dim=8", "--block=256",
                         "--repeats=1", f"--json={out}"])
  assert json.loads(out.read_text())["rows"] == table["rows"]
  assert [(r["slots"], r["queries"]) for r in table["rows"]] == [(1024, 32), (1024, 1)]
  for row in table["rows"]:
    assert set(row["ms"]) == {"head-major", "token-major", "batched"}
    assert max(row["max_abs_diff"].values()) < 1e-5, row
  assert table["rows"][1]["block"] == 1024  # one query reads widened blocks
  one_query = table["rows"][1]["batched_dots"]  # the forms are what they are named
  assert one_query["head-major"] == 0 and one_query["batched"] > 0 and one_query["token-major"] > 0, one_query
  assert ma.PER_HEAD_DOTS == 64  # the bench restores the product's setting


@pytest.mark.parametrize("flags, name", [(["--slots=1000"], "--slots"), (["--queries=0"], "--queries"),
                                         (["--slots=x"], "--slots"), (["--heads=0"], "--heads")])
def test_bad_flags_name_the_flag(flags, name, capsys):
  with pytest.raises(SystemExit) as e:
    _bench().parse_args(flags)
  assert e.value.code == 2 and name in capsys.readouterr().err
