"""MemoryInference with an IVF index of its memory: built as windows are flushed, exact when every list is probed
(one device and sharded over 8), and options that make no sense are refused naming the field."""

import jax
import numpy as np
import pytest

from fot_jax.model import ivf
from fot_jax.model.inference import MemoryInference, MemoryOptions
from tests.model.helpers import random_tokens, tiny_config, tiny_params

TOL = 1e-5


def _runner(config, options, batch=2):
  return MemoryInference(tiny_params(config), config, batch, window=8, last_context_length=6, mem_dtype="float32",
                         options=options)


def _docs(config):
  docs = [random_tokens((2, 45), config.vocab_size, seed=1), random_tokens((2, 30), config.vocab_size, seed=2)]
  valid = [np.ones((2, 45), bool), np.ones((2, 30), bool)]
  valid[0][1, :5] = False  # left padding in one row: padded tokens are never filed
  return docs, valid


def _encode(runner, docs, valid):
  return [np.asarray(runner.encode(d, v)) for d, v in zip(docs, valid)]


def _exact_then_ivf(topk, **index_options):
  """(exact top-k outputs, IVF outputs, validity, the IVF runner) on the same documents."""
  config = tiny_config()
  docs, valid = _docs(config)
  exact = _encode(_runner(config, MemoryOptions(topk=topk, block=4)), docs, valid)
  runner = _runner(config, MemoryOptions(topk=topk, block=4, index="ivf", **index_options))
  return exact, _encode(runner, docs, valid), valid, runner


def _assert_equal_where_valid(exact, got, valid):
  for e, g, v in zip(exact, got, valid):
    assert np.abs(e - g)[v].max() <= TOL


def _check_index_mirrors_memory(runner):
  """Every valid memory key is filed exactly once, in the list of the centroid its entry is stored with."""
  state = runner.state
  index, mem_k, mem_valid = state.index, np.asarray(state.mem_k), np.asarray(state.mem_valid)
  count = np.asarray(index.count)
  entries = [[np.asarray(a) for a in ivf.list_entries(index, lst)] for lst in range(index.nlist)]
  for m in range(mem_k.shape[0]):
    for b in range(mem_k.shape[1]):
      for h in range(mem_k.shape[2]):
        n = count[m, b, h]
        filed = np.concatenate([slots[m, b, h, :n[lst]] for lst, (_, slots) in enumerate(entries)])
        np.testing.assert_array_equal(np.sort(filed), np.flatnonzero(mem_valid[b]))
        for lst, (keys, slots) in enumerate(entries):
          np.testing.assert_array_equal(keys[m, b, h, :n[lst]], mem_k[m, b, h, slots[m, b, h, :n[lst]]])


def test_probing_every_list_equals_exact_top_k_multi_doc_with_padding(monkeypatch):
  from fot_jax.model import memory_index
  monkeypatch.setattr(memory_index, "REFILE_CHUNK", 8)  # refiling after training in chunks of 8 slots
  exact, got, valid, runner = _exact_then_ivf(5, nlist=4, nprobe=4)
  _assert_equal_where_valid(exact, got, valid)
  # Built incrementally: trained at the first flush, retrained as the memory doubled, every key filed.
  assert runner.memory_size == 45 - 6 + 30 and runner.indexer.trained_fill >= 32
  _check_index_mirrors_memory(runner)
  runner.forget()
  assert int(np.asarray(runner.state.index.count).sum()) == 0 and runner.indexer.trained_fill == 0


@pytest.mark.slow  # 30-55 s; tests/model/test_ivf.py checks few-list probing on one index
def test_probing_few_lists_reads_the_index_and_forget_empties_it():
  exact, got, _, runner = _exact_then_ivf(3, nlist=8, nprobe=1)
  _check_index_mirrors_memory(runner)
  # One list of eight per query: a different selection than exact top-k (tiny random model, unclustered keys).
  assert np.abs(exact[1] - got[1]).max() > 1e-4
  runner.forget()
  assert int(np.asarray(runner.state.index.count).sum()) == 0 and runner.indexer.trained_fill == 0


def test_index_sharded_over_8_devices_probing_every_list_equals_exact():
  mesh = jax.make_mesh((8,), ("memory",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:8])
  exact, got, valid, runner = _exact_then_ivf(4, nlist=2, nprobe=2, mesh=mesh, mem_axis="memory")
  _assert_equal_where_valid(exact, got, valid)
  count = runner.state.index.count  # each device holds its own 2 lists over its own slots
  assert count.shape[3] == 16 and len(count.sharding.device_set) == 8
  assert int(np.asarray(count).sum()) == int(np.asarray(runner.state.mem_valid).sum()) * count.shape[0] * count.shape[2]


@pytest.mark.parametrize("fields, name", [
    (dict(index="ivf", nlist=4, nprobe=2), "index.*dense memory"),  # no topk
    (dict(topk=4, index="ivf", nlist=4, nprobe=5), "nprobe.*at most nlist=4"),
    (dict(topk=4, index="ivf", nlist=4), "nprobe"),
    (dict(topk=4, index="ivf", nlist=0, nprobe=1), "nlist"),
    (dict(topk=4, index="pq", nlist=4, nprobe=1), "index"),
    (dict(topk=4, approx=True, index="ivf", nlist=4, nprobe=1), "index.*approx"),
    (dict(topk=4, streamed=False, index="ivf", nlist=4, nprobe=1), "index.*streamed"),
    (dict(topk=4, nlist=4, nprobe=1), "nlist/nprobe.*index=None"),
    (dict(topk=4, balance=1.25), "balance.*index=None"),
    (dict(topk=4, index="ivf", nlist=4, nprobe=1, balance=0.5), "balance.*at least 1"),
])
def test_bad_index_options_name_the_field(fields, name):
  with pytest.raises(ValueError, match=name):
    MemoryOptions(**fields)


@pytest.mark.slow  # 25 s; capped lists are not the default; tests/model/test_ivf.py checks the cap itself
def test_capped_lists_probing_every_list_equal_exact_top_k():
  exact, got, valid, runner = _exact_then_ivf(4, nlist=4, nprobe=4, balance=1.0)  # lists at most the mean length
  assert runner.indexer.balance == 1.0
  _assert_equal_where_valid(exact, got, valid)
  _check_index_mirrors_memory(runner)
