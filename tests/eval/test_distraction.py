"""Distraction r_d: hand-built attention gives the expected mass; a model with zero queries gives exactly 1/d."""

import json

import numpy as np
import pytest

from fot_jax.eval import distraction
from fot_jax.model.config import preset
from fot_jax.model.params import init_params


@pytest.mark.parametrize("d", [2, 4, 16])
def test_hand_built_attention(d):
  length, a = 5, 1.7
  logits = np.zeros((3, d, length), np.float32)  # 3 queries
  logits[:, 0] = a  # every positive key scores a, every negative 0
  expected = np.exp(a) / (np.exp(a) + d - 1)
  np.testing.assert_allclose(distraction.positive_ratio(logits), expected, rtol=1e-6)
  # Top-k keeping exactly the positive keys puts all the mass there.
  np.testing.assert_allclose(distraction.positive_ratio(logits, topk=length), 1.0, rtol=1e-6)
  # Mixed logits within the positive context: mass is the positive's share of sum(exp).
  logits[0, 0] = np.linspace(-1, 1, length)
  want = np.exp(logits[0, 0]).sum() / (np.exp(logits[0, 0]).sum() + (d - 1) * length)
  np.testing.assert_allclose(distraction.positive_ratio(logits)[0], want, rtol=1e-6)


def test_context_sets_use_other_documents_and_nest():
  ids = np.repeat(np.arange(6), 3)
  sets = distraction.context_sets(ids, 8, 10, seed=0)
  assert sets.shape == (10, 8)
  for row in sets:
    assert (ids[row[1:]] != ids[row[0]]).all()
    assert len(set(row.tolist())) == 8
  with pytest.raises(ValueError, match="--contexts"):
    distraction.context_sets(ids, 17, 4, seed=0)


def test_segments_are_consecutive_pieces():
  docs = [np.arange(100), np.arange(1000, 1030), np.arange(2000, 2050)]
  ctx, qry, ids = distraction.segments(docs, 10, per_doc=3)
  assert ids.tolist() == [0, 0, 0, 1, 2, 2]
  np.testing.assert_array_equal(qry[0], ctx[0] + 10)
  np.testing.assert_array_equal(ctx[-1], np.arange(2020, 2030))


def test_zero_query_model_is_uniform_over_contexts():
  """A memory layer whose queries are zero attends uniformly: r_d = 1/d exactly, for every d."""
  config = preset("tiny")
  params = init_params(config, 0)
  layer = config.mem_layers[0]
  params["layers"]["q_proj"] = params["layers"]["q_proj"].at[layer].set(0.0)
  rng = np.random.default_rng(0)
  contexts = rng.integers(3, config.vocab_size, (12, 8)).astype(np.int32)
  queries = rng.integers(3, config.vocab_size, (12, 8)).astype(np.int32)
  ids = np.arange(12)
  sets = distraction.context_sets(ids, 8, 6, seed=0)
  out = distraction.measure(params, config, contexts, queries, sets, [layer], [2, 4, 8], batch=4)
  np.testing.assert_allclose(out[str(layer)]["r"], [1 / 2, 1 / 4, 1 / 8], rtol=1e-5)
  # A random model is not focused either: close to 1/d.
  params = init_params(config, 1)
  out = distraction.measure(params, config, contexts, queries, sets, [layer], [2, 8], batch=4)
  np.testing.assert_allclose(out[str(layer)]["r"], [1 / 2, 1 / 8], rtol=0.25)


def test_rigged_model_that_finds_its_own_context():
  """Queries equal to keys of the same tokens: with a key/query projection that scores identical tokens highly,
  a query segment repeating its context's tokens puts most mass on the positive."""
  config = preset("tiny", num_kv_heads=4)
  params = init_params(config, 0)
  layer = config.mem_layers[0]
  hd = config.head_dim
  eye = np.zeros((config.hidden_size, config.num_heads * hd), np.float32)
  eye[:, :] = np.eye(config.hidden_size)[:, :config.num_heads * hd] * 30.0
  params["layers"]["q_proj"] = params["layers"]["q_proj"].at[layer].set(eye)
  params["layers"]["k_proj"] = params["layers"]["k_proj"].at[layer].set(eye)
  config = config.replace(mem_positionals="none")  # no rotation: q.k compares hidden states directly
  rng = np.random.default_rng(0)
  contexts = rng.integers(3, config.vocab_size, (10, 8)).astype(np.int32)
  queries = contexts.copy()  # each query segment repeats its own previous context
  sets = distraction.context_sets(np.arange(10), 4, 10, seed=0)
  out = distraction.measure(params, config, contexts, queries, sets, [layer], [2, 4], batch=5)
  assert min(out[str(layer)]["r"]) > 0.9


def test_main_end_to_end(tiny_checkpoint, tmp_path, jsonl_corpus, capsys):
  out = tmp_path / "di.json"
  rc = distraction.main([f"--checkpoint={tiny_checkpoint}", f"--out={out}", f"--corpus=jsonl:{jsonl_corpus}",
                         f"--data_dir={tmp_path / 'data'}", "--contexts=2,4", "--context_length=16",
                         "--num_queries=6", "--quiet"])
  assert rc == 0, capsys.readouterr().err
  result = json.loads(out.read_text())
  r = result["layers"]["2"]["r"]
  assert len(r) == 2 and 0 < r[1] < r[0] < 1
  assert (tmp_path / "di.png").exists()
