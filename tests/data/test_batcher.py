"""Batcher layouts on hand-made documents, k-packing, masks, exact resume and the multi-process split."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fot_jax.data.batcher import BatcherConfig, DocumentBatcher

BOS, EOS = 1, 2


def _docs(lengths, base=1000):
  """Document i is base*(i+1) + 0..len-1, so every token says which document and position it came from."""
  return [np.arange(n, dtype=np.int32) + base * (i + 1) for i, n in enumerate(lengths)]


def _stream(docs):
  return np.concatenate([np.concatenate([[BOS], d, [EOS]]) for d in docs])


def test_layout_short_and_long_documents_k1():
  docs = _docs([2, 9])  # one shorter than L=4, one longer than 2L
  cfg = BatcherConfig(batch_size=1, seq_len=4, k=1, shuffle=False, num_epochs=1)
  batches = list(DocumentBatcher(docs, cfg))
  stream = _stream(docs)  # 1 1000 1001 2 1 2000 .. 2008 2  (15 tokens -> 14 pairs -> 4 batches)
  assert len(batches) == 4
  inputs = np.concatenate([b["inputs"][0] for b in batches])
  targets = np.concatenate([b["targets"][0] for b in batches])
  imask = np.concatenate([b["input_mask"][0] for b in batches])
  lmask = np.concatenate([b["loss_mask"][0] for b in batches])
  n = len(stream) - 1
  np.testing.assert_array_equal(inputs[:n], stream[:-1])
  np.testing.assert_array_equal(targets[:n], stream[1:])
  assert imask[:n + 1].all() and not imask[n + 1:].any()  # the final EOS is a real input with no target
  # loss on every real target except the BOS that follows an EOS join; none on padding
  expected = np.ones(n, np.float32)
  expected[stream[1:] == BOS] = 0.0
  np.testing.assert_array_equal(lmask[:n], expected)
  assert not lmask[n:].any()
  np.testing.assert_array_equal(batches[0]["inputs"][0], [BOS, 1000, 1001, EOS])
  np.testing.assert_array_equal(batches[0]["targets"][0], [1000, 1001, EOS, BOS])


def test_k_packing_is_consecutive_within_and_across_batches():
  docs = _docs([7, 30, 3, 12, 25, 5, 40, 9])
  cfg = BatcherConfig(batch_size=6, seq_len=5, k=3, shuffle=True, seed=3)
  it = DocumentBatcher(docs, cfg)
  batches = [next(it) for _ in range(6)]
  for s in range(cfg.num_streams):
    rows = range(s * cfg.k, (s + 1) * cfg.k)
    ins = np.concatenate([b["inputs"][r] for b in batches for r in rows])
    tgs = np.concatenate([b["targets"][r] for b in batches for r in rows])
    np.testing.assert_array_equal(ins[1:], tgs[:-1])  # one continuous stream, targets shifted by one
    expected = np.concatenate([_stream([docs[i] for i in it.slot_documents(s, e)]) for e in range(4)])
    np.testing.assert_array_equal(ins, expected[:len(ins)])
  # the two streams own different documents
  assert set(it.slot_documents(0, 0)).isdisjoint(it.slot_documents(1, 0))


def test_stream_matches_slot_documents_then_next_epoch():
  docs = _docs([3, 4, 5])
  cfg = BatcherConfig(batch_size=1, seq_len=4, k=1, shuffle=True, seed=0)
  it = DocumentBatcher(docs, cfg)
  ins = np.concatenate([next(it)["inputs"][0] for _ in range(10)])
  expected = np.concatenate([_stream([docs[i] for i in it.slot_documents(0, e)]) for e in range(4)])
  np.testing.assert_array_equal(ins, expected[:len(ins)])
  assert len({tuple(it.slot_documents(0, e)) for e in range(8)}) > 1  # reshuffled per epoch


def test_loss_weights_documents_mask_only_weighted_targets():
  doc = {"targets": np.array([10, 11, 12, 13]), "loss_weights": np.array([0, 0, 1, 1], np.float32)}
  cfg = BatcherConfig(batch_size=1, seq_len=5, shuffle=False, num_epochs=1)
  (b,) = list(DocumentBatcher([doc], cfg))
  np.testing.assert_array_equal(b["targets"][0], [10, 11, 12, 13, EOS])
  np.testing.assert_array_equal(b["loss_mask"][0], [0, 0, 1, 1, 0])


def test_no_bos_vocabulary():
  cfg = BatcherConfig(batch_size=1, seq_len=3, shuffle=False, num_epochs=1, bos_id=None, eos_id=1)
  b = list(DocumentBatcher([np.array([5, 6]), np.array([7])], cfg))[0]  # stream 5 6 1 7 1
  np.testing.assert_array_equal(b["inputs"][0], [5, 6, 1])
  np.testing.assert_array_equal(b["targets"][0], [6, 1, 7])


@pytest.mark.parametrize("field,kw", [("micro_batches", dict(batch_size=8, k=2, micro_batches=3)),
                                      ("batch_size", dict(batch_size=6, k=4)),
                                      ("seq_len", dict(batch_size=2, seq_len=0))])
def test_bad_shapes_name_the_field(field, kw):
  kw.setdefault("seq_len", 4)
  with pytest.raises(ValueError, match=field):
    DocumentBatcher(_docs([5] * 8), BatcherConfig(**kw))


def test_empty_and_too_small_corpus_errors():
  with pytest.raises(ValueError, match="empty"):
    DocumentBatcher([], BatcherConfig(batch_size=2, seq_len=4))
  with pytest.raises(ValueError, match="fewer than the 4 document streams"):
    DocumentBatcher(_docs([5, 5]), BatcherConfig(batch_size=4, seq_len=4))


def test_state_mismatch_is_rejected():
  it = DocumentBatcher(_docs([5] * 4), BatcherConfig(batch_size=2, seq_len=4, seed=1))
  state = it.get_state()
  other = DocumentBatcher(_docs([5] * 4), BatcherConfig(batch_size=2, seq_len=4, seed=2))
  with pytest.raises(ValueError, match="seed"):
    other.set_state(state)


_RESUME_SCRIPT = """
import json, sys
import numpy as np
from fot_jax.data.batcher import BatcherConfig, DocumentBatcher
from tests.data.test_batcher import _docs
state, m = json.loads(sys.argv[1]), int(sys.argv[2])
it = DocumentBatcher(_docs({lengths!r}), BatcherConfig(**{cfg!r}), process_index={pi}, process_count={pc})
it.set_state(state)
out = [dict((k, v.tolist()) for k, v in next(it).items()) for _ in range(m)]
print(json.dumps(out))
"""


@pytest.mark.parametrize("restore_processes", [1, 2])
def test_exact_resume_in_new_process(restore_processes):
  import pathlib
  root = str(pathlib.Path(__file__).resolve().parents[2])
  lengths = [13, 2, 40, 7, 7, 25, 1, 60, 9, 3, 18, 33]
  cfg = dict(batch_size=8, seq_len=6, k=2, micro_batches=2, seed=7)
  full = DocumentBatcher(_docs(lengths), BatcherConfig(**cfg))
  n, m = 9, 7  # crosses documents and epochs (each stream has ~3 docs of ~20 tokens per epoch)
  for _ in range(n):
    next(full)
  state = json.loads(json.dumps(full.get_state()))
  expected = [next(full) for _ in range(m)]
  pieces = []
  for pi in range(restore_processes):
    script = _RESUME_SCRIPT.format(lengths=lengths, cfg=cfg, pi=pi, pc=restore_processes)
    res = subprocess.run([sys.executable, "-c", script, json.dumps(state), str(m)], capture_output=True,
                         text=True, check=True, cwd=root)
    pieces.append(json.loads(res.stdout))
  for step in range(m):
    for key in expected[step]:
      got = np.concatenate([np.asarray(p[step][key]) for p in pieces])
      np.testing.assert_array_equal(got, expected[step][key], err_msg=f"step {step} {key}")


def test_two_process_split_covers_every_document_once_and_matches_global():
  lengths = [5, 17, 3, 30, 8, 8, 21, 2, 11, 14, 6, 25, 9]
  docs = _docs(lengths)
  cfg = BatcherConfig(batch_size=8, seq_len=4, k=2, seed=11, num_epochs=1)
  whole = list(DocumentBatcher(docs, cfg))
  parts = [list(DocumentBatcher(docs, cfg, process_index=p, process_count=2)) for p in range(2)]
  assert len(parts[0]) == len(parts[1]) == len(whole)
  seen = []
  for p, batches in enumerate(parts):
    for step, b in enumerate(batches):
      assert b["inputs"].shape == (4, 4)
      rows = slice(p * 4, (p + 1) * 4)
      for key in b:
        np.testing.assert_array_equal(b[key], whole[step][key][rows])
    tokens = np.concatenate([b["inputs"][b["input_mask"]] for b in batches])
    seen.append(tokens)
  tokens = np.concatenate(seen)
  tokens = tokens[tokens >= 1000]
  # every token of every document appears exactly once across the two processes
  expected = np.sort(np.concatenate(docs))
  np.testing.assert_array_equal(np.sort(tokens), expected)
  # and each process only reads documents of its own slots
  it0 = DocumentBatcher(docs, cfg, process_index=0, process_count=2)
  own = set(np.concatenate([it0.slot_documents(s, 0) for s in range(*it0.slot_range)]).tolist())
  assert set((seen[0][seen[0] >= 1000] // 1000 - 1).tolist()) == own


def test_aligned_documents_start_a_group_and_pad_the_rest():
  """align_documents: each document starts chunk 0 of a k-chunk group; padding is masked out; resume is exact."""
  docs = _docs([3, 9, 2, 5, 12, 4])  # k*L = 8 stream tokens per group: BOS + 9 + EOS and BOS + 12 + EOS need two
  cfg = BatcherConfig(batch_size=2, seq_len=4, k=2, shuffle=False, num_epochs=1, align_documents=True)
  batcher = DocumentBatcher(docs, cfg)  # one stream: every batch is one group of 2 chunks
  batches = list(batcher)
  assert len(batches) == batcher.num_batches() == 8
  starts = [i for i, b in enumerate(batches) if b["inputs"][0, 0] == BOS]
  assert starts == [0, 1, 3, 4, 5, 7]  # every document begins a group
  stream = np.concatenate([b["inputs"].reshape(-1) for b in batches])
  real = np.concatenate([b["input_mask"].reshape(-1) for b in batches])
  np.testing.assert_array_equal(stream[real], _stream(docs)[:real.sum()])
  assert (stream[~real] == cfg.pad_id).all() and (~real).sum() == 8 * 8 - len(_stream(docs))
  for b in batches:  # nothing is learned from or about padding
    assert (b["loss_mask"][~b["input_mask"]] == 0).all()
  resumed = DocumentBatcher(docs, cfg)
  resumed.set_state({**batcher.get_state(), "step": 4})
  np.testing.assert_array_equal(resumed.next_batch()["inputs"], batches[4]["inputs"])
  unaligned = BatcherConfig(batch_size=2, seq_len=4, k=2, shuffle=False, num_epochs=1)
  with pytest.raises(ValueError, match="align_documents"):
    DocumentBatcher(docs, unaligned).set_state(batcher.get_state())
