"""A streaming batcher for corpora too large to cache: documents are read and tokenized in order from sharded
files, each host reading only its own files, with the DocumentBatcher's k-packing and batch layout.

Host p of P reads files p, p+P, ... of the sorted file list (so a host count above the file count is an error);
in epoch e it visits them in a seeded order (shuffle=True) or in file order. Each of its stream slots takes the
next document of the host's stream when its current one ends (slots in order, as batches are assembled), so
the batches are a pure function of (files, seed, host index and count). The state saved with the checkpoint is
small: the reader position (epoch, file, record) and, per slot, where its pending documents are and the token
offset; restoring re-reads only those documents. Unlike the cached batcher, the global batch depends on the
host count, and a restore needs the same count (checked).

With workers > 0, a pool of threads tokenizes up to 4 documents per worker ahead of the batches while the reader
thread decompresses and parses; results are taken in reading order, so the batches and the state are those of
inline tokenization (the state never counts documents read ahead). SentencePiece releases the GIL while it
encodes, so the threads run in parallel.
"""

from __future__ import annotations

import collections
import concurrent.futures
import zlib
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from fot_jax.data import corpus_files
from fot_jax.data.batcher import BatcherConfig, batch_rows, stream_piece

STATE_VERSION = 1
Ref = tuple[int, int, int]  # (epoch, file position in the epoch's order, record index in the file)


class StreamingBatcher:
  """Yields this host's rows [B_local, L] of each batch from a '<kind>:<glob>' file corpus (corpus_files)."""

  def __init__(self, kind: str, pattern: str, split: str, encode: Callable[[str], Any], cfg: BatcherConfig,
               process_index: int = 0, process_count: int = 1, min_length: int = 0, workers: int = 0):
    cfg.validate()
    if workers < 0:
      raise ValueError(f"stream workers: expected >= 0 (0 tokenizes inline), found {workers}")
    if cfg.num_epochs is not None:
      raise ValueError("a streaming source repeats its files forever: BatcherConfig.num_epochs must be None")
    S = cfg.num_streams
    if not 0 <= process_index < process_count or S % process_count:
      raise ValueError(f"the {S} document streams (batch_size/k) must split evenly over process_count="
                       f"{process_count} (process_index={process_index})")
    paths = corpus_files.files(kind, pattern, split)
    if len(paths) < process_count:
      raise ValueError(f"streaming corpus {pattern!r}: {len(paths)} files for {process_count} hosts; each host "
                       f"reads whole files, so split the corpus into at least {process_count} files")
    self.kind, self.pattern, self.split, self.encode, self.cfg = kind, pattern, split, encode, cfg
    self.min_length = int(min_length)
    self.workers = int(workers)  # threads tokenizing ahead (the tokenizer must release the GIL to gain)
    self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="stream-tokenize") if workers \
        else None
    self.process_index, self.process_count = process_index, process_count
    self.files = paths[process_index::process_count]
    self.hashed = kind in corpus_files.HASH_SPLIT_KINDS and "{split}" not in pattern
    per = S // process_count
    self.slot_range = (process_index * per, (process_index + 1) * per)
    self.set_state({"version": STATE_VERSION, "step": 0, "reader": [0, 0, 0],
                    "slots": [[0, []] for _ in range(per)], "fingerprint": self._fingerprint()})

  # --- reading documents ------------------------------------------------------------------------------------
  def _order(self, epoch: int) -> np.ndarray:
    if not self.cfg.shuffle:
      return np.arange(len(self.files))
    return np.random.default_rng([self.cfg.seed, epoch, self.process_index]).permutation(len(self.files))

  def _epoch_texts(self, epoch: int, pos: int, record: int) -> Iterator[tuple[Ref, str]]:
    """(ref, text) of the host's documents of one epoch from file position pos, record `record` on."""
    order = self._order(epoch)
    while pos < len(order):
      path = self.files[order[pos]]
      for r, (doc_id, text) in enumerate(corpus_files.file_documents(self.kind, path)):
        if r >= record and (not self.hashed or corpus_files.split_of(doc_id, corpus_files.HASH_VALID_PERCENT)
                            == self.split):
          yield (epoch, pos, r), text
      pos, record = pos + 1, 0

  def _encoded(self, texts: Iterator[tuple[Ref, str]]) -> Iterator[tuple[Ref, np.ndarray]]:
    """(ref, tokens) in the order of texts: encoded inline, or up to 4 documents per worker ahead in the pool."""
    encode = lambda text: np.asarray(self.encode(text), np.int32)  # noqa: E731
    if self._pool is None:
      for ref, text in texts:
        yield ref, encode(text)
      return
    ahead: collections.deque = collections.deque()
    for ref, text in texts:
      ahead.append((ref, self._pool.submit(encode, text)))
      if len(ahead) >= 4 * self.workers:
        ref0, job = ahead.popleft()
        yield ref0, job.result()
    while ahead:
      ref0, job = ahead.popleft()
      yield ref0, job.result()

  def _documents_from(self, start: Ref) -> Iterator[tuple[Ref, np.ndarray]]:
    """(ref, tokens) of the host's kept documents from `start` on, forever (epoch after epoch)."""
    epoch, pos, record = start
    while True:
      whole_epoch, kept_any = pos == 0 and record == 0, False
      for ref, tokens in self._encoded(self._epoch_texts(epoch, pos, record)):
        if len(tokens) >= self.min_length:
          kept_any = True
          yield ref, tokens
      if whole_epoch and not kept_any:
        raise ValueError(f"streaming corpus {self.pattern!r}: host {self.process_index} of "
                         f"{self.process_count} found no {self.split} documents of at least min_length="
                         f"{self.min_length} tokens in its {len(self.files)} files")
      epoch, pos, record = epoch + 1, 0, 0

  def _read_refs(self, refs: list[Ref]) -> dict[Ref, np.ndarray]:
    """Tokens of the documents at these refs, one pass over each file involved."""
    out = {}
    for epoch, pos in sorted({(e, p) for e, p, _ in refs}):
      wanted = {r for e, p, r in refs if (e, p) == (epoch, pos)}
      path = self.files[self._order(epoch)[pos]]
      for r, (_, text) in enumerate(corpus_files.file_documents(self.kind, path)):
        if r in wanted:
          out[(epoch, pos, r)] = np.asarray(self.encode(text), np.int32)
          if len(out) == len(refs) or r >= max(wanted):
            break
    return out

  def _pull(self) -> tuple[Ref, tuple]:
    ref, tokens = next(self._reader)
    self._reader_pos = (ref[0], ref[1], ref[2] + 1)
    return ref, stream_piece(self.cfg, {"targets": tokens})

  def _read(self, i: int, n: int, advance: bool):
    """n tokens of local slot i's stream (its pending documents, pulling new ones from the host stream)."""
    tokens = np.empty(n, np.int32)
    weights = np.empty(n, np.float32)
    real = np.empty(n, bool)
    queue, off, j, pos = self._queues[i], self._offsets[i], 0, 0
    while pos < n:
      if j == len(queue):
        queue.append(self._pull())
      t, w, m = queue[j][1]
      take = min(n - pos, len(t) - off)
      tokens[pos:pos + take], weights[pos:pos + take], real[pos:pos + take] = (
          t[off:off + take], w[off:off + take], m[off:off + take])
      pos, off = pos + take, off + take
      if off == len(t):
        j, off = j + 1, 0
    if advance:
      del queue[:j]
      self._offsets[i] = off
    return tokens, weights, real

  # --- iteration --------------------------------------------------------------------------------------------
  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return self.next_batch()

  def next_batch(self) -> dict[str, np.ndarray]:
    out = batch_rows(self.cfg, len(self._queues), self._read)
    self.step += 1
    return out

  def num_batches(self) -> None:
    return None

  # --- state ------------------------------------------------------------------------------------------------
  def _fingerprint(self) -> dict[str, Any]:
    c = self.cfg
    names = "\n".join(self.files).encode()
    return {"batch_size": c.batch_size, "seq_len": c.seq_len, "k": c.k, "seed": c.seed, "shuffle": c.shuffle,
            "bos_id": c.bos_id, "eos_id": c.eos_id, "process_index": self.process_index,
            "process_count": self.process_count, "files": f"{len(self.files)}:{zlib.crc32(names):08x}",
            "min_length": self.min_length, **({"align_documents": True} if c.align_documents else {})}

  def get_state(self) -> dict[str, Any]:
    """JSON state: step, reader position, and per slot (token offset, refs of its pending documents)."""
    return {"version": STATE_VERSION, "step": int(self.step), "reader": list(self._reader_pos),
            "slots": [[int(off), [list(ref) for ref, _ in q]] for off, q in zip(self._offsets, self._queues)],
            "fingerprint": self._fingerprint()}

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Restores the position after state['step'] batches (same files, host index and count; checked)."""
    if state.get("version") != STATE_VERSION or "reader" not in state:
      raise ValueError(f"streaming state version {state.get('version')!r} != {STATE_VERSION} (or not a streaming "
                       f"state)")
    fp = self._fingerprint()
    saved = dict(state.get("fingerprint", {}))
    diff = {k: (saved.get(k), fp.get(k)) for k in {**saved, **fp} if saved.get(k) != fp.get(k)}
    if diff:
      raise ValueError(f"streaming state was saved with different settings (saved, now): {diff}")
    slots = state["slots"]
    if len(slots) != self.slot_range[1] - self.slot_range[0]:
      raise ValueError(f"streaming state has {len(slots)} slots, this host owns {self.slot_range}")
    refs = [tuple(r) for _, q in slots for r in q]
    tokens = self._read_refs(refs) if refs else {}
    self._queues = [[(tuple(r), stream_piece(self.cfg, {"targets": tokens[tuple(r)]})) for r in q]
                    for _, q in slots]
    self._offsets = [int(off) for off, _ in slots]
    self.step = int(state["step"])
    self._reader_pos = tuple(state["reader"])
    self._reader = self._documents_from(self._reader_pos)
