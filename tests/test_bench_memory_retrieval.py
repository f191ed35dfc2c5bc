"""bench/bench_memory_retrieval.py refuses IVF settings that make no sense, naming the flag."""

import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench",
                     "bench_memory_retrieval.py")


def _bench():
  spec = importlib.util.spec_from_file_location("bench_memory_retrieval", _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("flags, name", [
    (["--index=ivf", "--nlist=8", "--nprobe=9"], "--nprobe=9"),
    (["--index=ivf", "--sizes=256", "--nprobe=32"], "--nprobe=32"),  # default nlist of 256 keys is 16
    (["--nlist=8"], "--nlist"),  # IVF settings without --index=ivf
    (["--index=ivf", "--shards=3", "--sizes=1M"], "--shards=3"),  # shards of unequal size
    (["--index=ivf", "--shards=8", "--sizes=64k", "--nprobe=128"], "--nprobe=128"),  # 8k keys per device: 64 lists
    (["--k=100", "--sizes=64"], "--k=100"),  # top-k larger than the memory
    (["--index=ivf", "--balance=0.5"], "--balance"),  # a cap below the mean list length
    (["--index=ivf", "--balance=1.5,tight"], "--balance"),
    (["--balance=1.25"], "--balance"),  # IVF settings without --index=ivf
    (["--index=ivf", "--nprobe=8,x"], "--nprobe"),
    (["--index=ivf", "--nlist=16", "--nprobe=8,32"], "--nprobe=32"),  # the largest of the list is checked
    (["--recall_queries=0"], "--recall_queries"),
    (["--recall_queries=8"], "--recall_queries=8"),  # one device: recall is measured on every query
])
def test_bad_flags_name_the_flag(flags, name, capsys):
  with pytest.raises(SystemExit) as e:
    _bench().parse_args(flags)
  assert e.value.code == 2 and name in capsys.readouterr().err


def test_default_nlist_is_the_power_of_two_nearest_sqrt_size():
  bench = _bench()
  assert [bench.default_nlist(n, None) for n in (1 << 16, 1 << 20, 1 << 24)] == [256, 1024, 4096]
  assert bench.default_nlist(1 << 24, 100) == 100


def test_ivf_lists_of_settings_parse_one_value_each():
  args = _bench().parse_args(["--index=ivf", "--sizes=1M", "--nprobe=16,32", "--balance=none,1.25"])
  assert args.nprobe == [16, 32] and args.balance == [None, 1.25]


def test_sharded_ivf_comparison_on_8_fake_devices_recalls_everything_probing_every_list(tmp_path):
  import json
  import subprocess
  import sys
  out = tmp_path / "ivf.json"
  subprocess.run([sys.executable, _PATH, "--index=ivf", "--shards=8", "--sizes=16k", "--queries=8", "--k=8",
                  "--block=1024", "--repeats=1", "--nlist=4", "--nprobe=1,4", "--mem_dtype=float32", "--head_dim=8",
                  f"--json={out}"], check=True, capture_output=True, text=True, timeout=300)
  rows = json.loads(out.read_text())["rows"]
  assert [(r["shards"], r["nprobe"]) for r in rows] == [(8, 1), (8, 4)]
  assert rows[1]["recall"] == 1.0  # every list of every device: the exact selection
  assert rows[0]["recall"] < 1.0 and rows[0]["list_mean"] == 16 * 1024 / 32


def test_default_balance_is_the_products():
  from fot_jax.model import ivf
  assert _bench().BALANCE_DEFAULT == ivf.BALANCE
