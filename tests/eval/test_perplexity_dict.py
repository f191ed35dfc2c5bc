"""Perplexity and dictionary lookup evaluators; the streaming scorer against MemoryInference.encode."""

import json

import jax
import numpy as np
import pytest

from fot_jax.data import synthetic
from fot_jax.eval import common, dict_lookup, generate, perplexity
from fot_jax.model.config import preset
from fot_jax.model.inference import MemoryInference, MemoryOptions
from fot_jax.model.params import init_params
from tests.eval.fakes import FakeRunner, InductionRunner, RandomRunner


@pytest.mark.parametrize("topk", [None, pytest.param(3, marks=pytest.mark.slow)])
def test_stream_scores_match_encode_single_and_multi_doc(topk):
  """Window-by-window scoring reproduces encode() exactly, also when memory is kept across documents."""
  config = preset("tiny", max_position_embeddings=16, last_context_length=8)
  params = init_params(config, 0)
  rng = np.random.default_rng(0)
  docs = [rng.integers(0, config.vocab_size, (2, n)).astype(np.int32) for n in (37, 21)]
  opts = MemoryOptions(topk=topk)
  ref = MemoryInference(params, config, 2, options=opts)
  ours = MemoryInference(params, config, 2, options=opts)
  for doc in docs:  # no reset between documents: multi-doc
    logits = ref.encode(doc)
    want = np.take_along_axis(jax.nn.log_softmax(logits[:, :-1]), doc[:, 1:, None], -1)[..., 0]
    got, preds = common.stream_scores(ours, doc)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(preds, np.argmax(logits[:, :-1], -1))
    assert ours.memory_size == ref.memory_size


def test_buckets():
  assert perplexity.bucket_edges(256) == [0, 32, 64, 128, 256]
  assert perplexity.bucket_edges(100) == [0, 32, 64, 100]
  lp = -np.tile(np.arange(1, 128, dtype=np.float32), (2, 1))  # loss of column t = t+1 = its context length
  out = perplexity.bucketed(lp, [0, 32, 64, 128])
  np.testing.assert_allclose(out["loss"], [16.5, 48.5, 96.0])
  assert out["tokens"] == [64, 64, 126]


def test_uniform_model_has_perplexity_vocab_size():
  v = 50
  docs = [np.arange(100) % v for _ in range(3)]
  out = perplexity.evaluate_single(lambda b: FakeRunner(v, batch=b), docs, 96, 2, perplexity.bucket_edges(96))
  np.testing.assert_allclose(out["perplexity"], v, rtol=1e-5)
  pieces = perplexity.distractor_pieces(docs, 40)
  assert len(pieces) == 6 and all(len(p) == 40 for _, p in pieces)
  multi = perplexity.evaluate_multi(lambda b: FakeRunner(v, batch=b, window=16), [docs[0][:64]], [0], pieces,
                                    [0, 2, 4], local=16, seed=0)
  np.testing.assert_allclose(multi["perplexity"], v, rtol=1e-5)
  assert multi["memory_tokens"] == [0, 80 - 16, 160 - 16]  # fake memory = history beyond its window


def test_multi_doc_distractors_come_from_other_documents():
  with pytest.raises(ValueError, match="--distractors"):
    perplexity.evaluate_multi(lambda b: FakeRunner(10, batch=b), [np.arange(20)], [0],
                              [(0, np.arange(8)), (1, np.arange(8))], [2], local=4, seed=0)


def test_dict_inputs_and_oracle_and_chance():
  tokens, masks = dict_lookup.build_inputs(num_docs=4, n_defs=3, doc_len=80, seed=0)
  assert tokens.shape == (4, 1 + 3 * 40 + 40) and (tokens[:, 0] == 1).all()
  assert masks.sum(1).tolist() == [4 * 4] * 4  # 4 records of 4 value tokens in a 40-token query half
  v = synthetic.DICT_VOCAB_SIZE
  oracle = dict_lookup.score(lambda b: InductionRunner(v, batch=b, window=64), tokens, masks, batch_size=2)
  assert oracle["accuracy"] == 1.0 and oracle["token_accuracy"] == 1.0
  # Without memory (history limited to one 10-token record) the definitions are gone.
  blind = dict_lookup.score(lambda b: InductionRunner(v, batch=b, lookback=10), tokens, masks, batch_size=4)
  assert blind["accuracy"] == 0.0
  tokens, masks = dict_lookup.build_inputs(num_docs=8, n_defs=1, doc_len=512, seed=0)
  lo = synthetic.DICT_FIRST_SYMBOL
  guess = dict_lookup.score(lambda b: RandomRunner(v, lo, lo + synthetic.DICT_NUM_SYMBOLS, batch=b), tokens,
                            masks, batch_size=8)
  assert 0.004 < guess["token_accuracy"] < 0.035  # chance 1/64 over 800 value tokens
  assert guess["accuracy"] == 0.0


def test_dict_and_perplexity_mains(tiny_checkpoint, tmp_path, jsonl_corpus, capsys):
  rc = dict_lookup.main([f"--checkpoint={tiny_checkpoint}", f"--out={tmp_path / 'd.json'}", "--memory_tokens=40,80",
                         "--doc_len=80", "--num_docs=2", "--quiet"])
  assert rc == 0, capsys.readouterr().err
  d = json.loads((tmp_path / "d.json").read_text())
  assert d["memory_tokens"] == [40, 80] and (tmp_path / "d.png").exists()
  flags = [f"--checkpoint={tiny_checkpoint}", f"--corpus=jsonl:{jsonl_corpus}", f"--data_dir={tmp_path / 'data'}",
           "--quiet"]
  rc = perplexity.main(flags + [f"--out={tmp_path / 'p.json'}", "--max_length=128", "--num_docs=2"])
  assert rc == 0, capsys.readouterr().err
  p = json.loads((tmp_path / "p.json").read_text())
  assert p["context_lengths"] == [32, 64, 128] and all(np.isfinite(p["loss"]))
  rc = perplexity.main(flags + [f"--out={tmp_path / 'x.json'}", "--compare=nolabel.json"])
  assert rc == 2 and "--compare" in capsys.readouterr().err


def test_generate_main(tiny_checkpoint, tmp_path, capsys):
  prompt = tmp_path / "prompt.txt"
  prompt.write_text("def main():\n  return " * 4)
  rc = generate.main([f"--checkpoint={tiny_checkpoint}", f"--prompt_file={prompt}", f"--out={tmp_path / 'g.json'}",
                      "--max_new_tokens=5", "--quiet"])
  assert rc == 0, capsys.readouterr().err
  g = json.loads((tmp_path / "g.json").read_text())
  assert len(g["new_tokens"]) == 5 and g["prompt_tokens"] == len(prompt.read_bytes())  # byte vocab: no BOS
  assert g["memory_size"] > 0  # the prompt is longer than the window: part of it lives in memory
