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
    (["--index=ivf", "--shards=2"], "--shards"),
    (["--k=100", "--sizes=64"], "--k=100"),  # top-k larger than the memory
])
def test_bad_flags_name_the_flag(flags, name, capsys):
  with pytest.raises(SystemExit) as e:
    _bench().parse_args(flags)
  assert e.value.code == 2 and name in capsys.readouterr().err


def test_default_nlist_is_the_power_of_two_nearest_sqrt_size():
  bench = _bench()
  assert [bench.default_nlist(n, None) for n in (1 << 16, 1 << 20, 1 << 24)] == [256, 1024, 4096]
  assert bench.default_nlist(1 << 24, 100) == 100
