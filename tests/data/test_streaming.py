"""The streaming batcher: the cached batcher's layout on the same documents, exact resume from its small state,
per-host files, and refusals (other host count, too few files)."""

import json
import time

import numpy as np
import pytest

from fot_jax.data.batcher import BatcherConfig, DocumentBatcher
from fot_jax.data.streaming import StreamingBatcher
from tests.data.corpus_fixtures import texts, write_jsonl


def encode(text: str) -> list[int]:
  """A byte tokenizer (ids 3..258) without TensorFlow."""
  return [b + 3 for b in text.encode()]


def _cfg(**kw):
  base = dict(batch_size=4, seq_len=16, k=2, seed=3, shuffle=True, bos_id=1, eos_id=2)
  return BatcherConfig(**{**base, **kw})


def _corpus(tmp_path, files=4, per_file=5):
  for f in range(files):
    write_jsonl(str(tmp_path / "c" / f"part{f}.jsonl{'.gz' if f % 2 else ''}"), texts(f"f{f}", per_file, 4))
  return str(tmp_path / "c" / "*.jsonl*")


def _same(xs, ys):
  assert len(xs) == len(ys)
  for x, y in zip(xs, ys):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_one_stream_matches_the_cached_batcher_layout(tmp_path):
  pattern = _corpus(tmp_path, files=1, per_file=6)
  cfg = _cfg(batch_size=2, k=2, shuffle=False)
  stream = StreamingBatcher("jsonl", pattern, "train", encode, cfg)
  docs = [np.asarray(encode(r["text"]), np.int32) for r in texts("f0", 6, 4)]
  cached = DocumentBatcher(docs, cfg)
  _same([next(stream) for _ in range(12)], [next(cached) for _ in range(12)])  # runs into the second epoch


def test_resume_from_saved_state_is_exact(tmp_path):
  pattern = _corpus(tmp_path)
  b = StreamingBatcher("jsonl", pattern, "train", encode, _cfg(), min_length=30)
  for _ in range(3):
    next(b)
  state = json.loads(json.dumps(b.get_state()))  # what the checkpoint stores
  after = [next(b) for _ in range(8)]
  assert len(json.dumps(state)) < 2000 and state["step"] == 3
  again = StreamingBatcher("jsonl", pattern, "train", encode, _cfg(), min_length=30)
  again.set_state(state)
  _same(after, [next(again) for _ in range(8)])
  stream = np.concatenate([x["inputs"][:2].ravel() for x in after])  # slot 0's stream: every document >= 30 tokens
  starts, ends = np.flatnonzero(stream == 1), np.flatnonzero(stream == 2)
  assert len(ends) >= 2 and all(e - s - 1 >= 30 for s, e in zip(starts, ends[ends > starts[0]]))


def test_each_host_reads_only_its_files(tmp_path):
  pattern = _corpus(tmp_path)
  hosts = [StreamingBatcher("jsonl", pattern, "train", encode, _cfg(), p, 2) for p in range(2)]
  assert [len(h.files) for h in hosts] == [2, 2] and not set(hosts[0].files) & set(hosts[1].files)
  rows = [next(h)["inputs"] for h in hosts]
  assert rows[0].shape == (2, 16)
  texts0 = bytes(int(t) - 3 for t in rows[0].ravel() if t > 2).decode(errors="replace")
  assert "f0 " in texts0 or "f2 " in texts0
  one_host = StreamingBatcher("jsonl", pattern, "train", encode, _cfg(), 0, 1)
  with pytest.raises(ValueError, match="'process_count': \\(1, 2\\)"):  # a restore needs the same host count
    hosts[0].set_state(one_host.get_state())
  with pytest.raises(ValueError, match="5 hosts"):
    StreamingBatcher("jsonl", pattern, "train", encode, _cfg(batch_size=10, k=2), 0, 5)


def test_no_document_long_enough_is_an_error(tmp_path):
  b = StreamingBatcher("jsonl", _corpus(tmp_path, files=1), "train", encode, _cfg(), min_length=10**6)
  with pytest.raises(ValueError, match="no train documents of at least min_length=1000000"):
    next(b)


def test_worker_threads_give_the_inline_batches_and_exact_resume(tmp_path):
  pattern = _corpus(tmp_path, files=3, per_file=7)
  inline_seen, pooled_seen = [], []

  def counting(seen, delay):
    def encode_(text):  # with a delay varying by document, later documents finish first when several are in flight
      seen.append(text)
      time.sleep(delay * (len(text) % 5))
      return encode(text)
    return encode_
  inline = StreamingBatcher("jsonl", pattern, "train", counting(inline_seen, 0), _cfg(), min_length=30)
  want = [next(inline) for _ in range(5)]
  state_inline, read_inline = json.loads(json.dumps(inline.get_state())), len(inline_seen)
  want += [next(inline) for _ in range(9)]  # into the second epoch
  pooled = StreamingBatcher("jsonl", pattern, "train", counting(pooled_seen, 0.002), _cfg(), min_length=30,
                            workers=3)
  got = [next(pooled) for _ in range(5)]
  state = json.loads(json.dumps(pooled.get_state()))
  assert state == state_inline and len(pooled_seen) > read_inline  # it tokenized ahead; the state does not say so
  got += [next(pooled) for _ in range(9)]
  _same(got, want)
  resumed = StreamingBatcher("jsonl", pattern, "train", encode, _cfg(), min_length=30, workers=2)
  resumed.set_state(state)
  _same([next(resumed) for _ in range(9)], want[5:])
  with pytest.raises(ValueError, match="stream workers: expected >= 0"):
    StreamingBatcher("jsonl", pattern, "train", encode, _cfg(), workers=-1)
