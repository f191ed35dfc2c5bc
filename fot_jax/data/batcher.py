"""Document-aware FoT batcher: B/k stream slots, k-packing, shifted targets, loss masks, exact resume.

docs/BEHAVIOUR.md section 2: entries s*k .. s*k+k-1 of a batch are k consecutive L-token chunks of one
document stream, and the next batch continues every stream. Each slot owns a stream of whole documents joined as
`BOS d1 EOS BOS d2 EOS ...`. The documents of slot s in epoch e are `perm(seed, e)[s::S]` (S = B/k streams), a
pure function of (seed, epoch, global slot index): a process that owns slots [a, b) reads only their documents,
and the global batch is the same for any process count. The state is the step count; positions are recomputed
from document lengths, so a checkpoint restores onto any number of processes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

STATE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class BatcherConfig:
  """Shape and stream options of the batcher (plain values; the trainer copies them from its ConfigDict)."""

  batch_size: int  # B: global entries per batch
  seq_len: int  # L: tokens per entry (local context)
  k: int = 1  # entries per document stream (k-packing)
  micro_batches: int = 1  # M: contiguous groups of B/M entries (gradient accumulation); crossbatch stays inside
  seed: int = 0
  shuffle: bool = True  # permute documents each epoch (False: corpus order, round-robin over slots)
  num_epochs: int | None = None  # None: repeat forever; else streams end and pad, iteration stops
  bos_id: int | None = 1  # LLaMA <s>; None: add no BOS (e.g. seqio.ByteVocabulary has none)
  eos_id: int | None = 2  # LLaMA </s>
  pad_id: int = 0  # value of padding tokens; masks, not this id, say what is padding (0 is LLaMA's <unk>)
  # True: every document starts a new group of k chunks (its stream piece is padded to a multiple of k*L), so
  # a chunk's positives never hold another document (short documents, e.g. synthetic tasks)
  align_documents: bool = False

  @property
  def align(self) -> int:
    """Stream pieces are padded to a multiple of this many tokens."""
    return self.k * self.seq_len if self.align_documents else 1

  @property
  def num_streams(self) -> int:
    return self.batch_size // self.k

  def validate(self) -> None:
    for name in ("batch_size", "seq_len", "k", "micro_batches"):
      if getattr(self, name) < 1:
        raise ValueError(f"BatcherConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.batch_size % (self.micro_batches * self.k):
      raise ValueError(
          f"BatcherConfig.batch_size={self.batch_size} must be a multiple of micro_batches*k="
          f"{self.micro_batches}*{self.k}: each micro-batch must hold whole k-entry document streams")
    if self.num_epochs is not None and self.num_epochs < 1:
      raise ValueError(f"BatcherConfig.num_epochs must be None or >= 1, got {self.num_epochs}")


def _doc_parts(doc: Any) -> tuple[np.ndarray, np.ndarray | None]:
  """A document is an int array of token ids, or a mapping with 'targets' and optional 'loss_weights'."""
  if isinstance(doc, Mapping):
    tokens = np.asarray(doc["targets"], dtype=np.int32)
    weights = doc.get("loss_weights")
    if weights is not None:
      weights = np.asarray(weights, dtype=np.float32)
      if weights.shape != tokens.shape:
        raise ValueError(f"document loss_weights shape {weights.shape} != targets shape {tokens.shape}")
    return tokens, weights
  return np.asarray(doc, dtype=np.int32), None


def _eos_weight(doc: Any, weights: np.ndarray | None) -> float:
  """Loss weight of the EOS closing a document: 1 for plain text; for weighted (task) documents their
  'eos_loss_weight' (instruction data trains the end of a completion), else 0."""
  if weights is None:
    return 1.0
  return float(doc.get("eos_loss_weight", 0.0))


def document_lengths(docs: Sequence[Any]) -> np.ndarray:
  """Token counts of all documents; uses `docs.lengths` when the source has it (no token reads)."""
  lengths = getattr(docs, "lengths", None)
  if lengths is not None:
    return np.asarray(lengths, dtype=np.int64)
  return np.asarray([len(_doc_parts(docs[i])[0]) for i in range(len(docs))], dtype=np.int64)


def stream_piece(cfg: BatcherConfig, doc: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Tokens, per-token target weights and the real-token mask of a document's stream piece: BOS + doc + EOS,
  then padding up to a multiple of cfg.align."""
  tokens, weights = _doc_parts(doc)
  parts_t, parts_w = [], []
  if cfg.bos_id is not None:  # BOS as a target (after the previous EOS) carries no loss
    parts_t.append(np.array([cfg.bos_id], np.int32))
    parts_w.append(np.zeros(1, np.float32))
  parts_t.append(tokens)
  parts_w.append(np.ones(len(tokens), np.float32) if weights is None else weights)
  if cfg.eos_id is not None:
    parts_t.append(np.array([cfg.eos_id], np.int32))
    parts_w.append(np.full(1, _eos_weight(doc, weights), np.float32))
  t, w = np.concatenate(parts_t), np.concatenate(parts_w)
  pad = -len(t) % cfg.align
  return (np.concatenate([t, np.full(pad, cfg.pad_id, np.int32)]), np.concatenate([w, np.zeros(pad, np.float32)]),
          np.arange(len(t) + pad) < len(t))


def batch_rows(cfg: BatcherConfig, num_slots: int, read) -> dict[str, np.ndarray]:
  """The [num_slots*k, L] rows of one batch; read(i, n, advance) -> (tokens, weights, real) of local slot i's
  stream (k*L tokens advancing, then a 1-token peek at the next batch's first token for the last target)."""
  k, L = cfg.k, cfg.seq_len
  rows = num_slots * k
  out = {"inputs": np.empty((rows, L), np.int32), "targets": np.empty((rows, L), np.int32),
         "loss_mask": np.empty((rows, L), np.float32), "input_mask": np.empty((rows, L), bool)}
  for i in range(num_slots):
    t, w, r = read(i, k * L, True)
    t1, w1, r1 = read(i, 1, False)
    t, w, r = np.concatenate([t, t1]), np.concatenate([w, w1]), np.concatenate([r, r1])
    sl = slice(i * k, (i + 1) * k)
    out["inputs"][sl] = t[:-1].reshape(k, L)
    out["targets"][sl] = t[1:].reshape(k, L)
    out["loss_mask"][sl] = (w[1:] * (r[1:] & r[:-1])).reshape(k, L)
    out["input_mask"][sl] = r[:-1].reshape(k, L)
  return out


@dataclasses.dataclass
class _Cursor:
  epoch: int
  index: int  # position in the slot's document list for this epoch
  offset: int  # token offset inside that document's stream (BOS + doc + EOS)


class DocumentBatcher:
  """Yields numpy batches {inputs, targets, loss_mask, input_mask} of shape [B_local, L] for this process.

  `docs` is any indexable of documents (see `_doc_parts`); a `lengths` attribute avoids reading every
  document to learn its length. Process p of P owns the contiguous slots [p*S/P, (p+1)*S/P) (rows times k).
  """

  def __init__(self, docs: Sequence[Any], cfg: BatcherConfig, process_index: int = 0, process_count: int = 1,
               slot_range: tuple[int, int] | None = None):
    cfg.validate()
    self.docs, self.cfg = docs, cfg
    self.num_docs = len(docs)
    if self.num_docs == 0:
      raise ValueError("the document source is empty: no documents to batch (check the corpus path, split and "
                       "minimum document length)")
    S = cfg.num_streams
    if cfg.num_epochs is None and self.num_docs < S:
      raise ValueError(f"the corpus has {self.num_docs} documents, fewer than the {S} document streams "
                       f"(batch_size/k = {cfg.batch_size}/{cfg.k}); use a smaller batch or a larger corpus")
    if slot_range is None:
      if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, process_count={process_count})")
      if S % process_count:
        raise ValueError(f"the {S} document streams (batch_size/k) do not split evenly over "
                         f"process_count={process_count}")
      per = S // process_count
      slot_range = (process_index * per, (process_index + 1) * per)
    self.slot_range = tuple(int(x) for x in slot_range)
    if not 0 <= self.slot_range[0] < self.slot_range[1] <= S:
      raise ValueError(f"slot_range={slot_range} must be a non-empty range inside [0, {S})")
    self._lengths: np.ndarray | None = None
    self._perm_cache: dict[int, np.ndarray] = {}
    self._doc_cache: dict[int, dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]] = {}
    self.set_state({"version": STATE_VERSION, "step": 0, "fingerprint": self._fingerprint()})

  # --- document assignment -----------------------------------------------------------------------------------
  def _perm(self, epoch: int) -> np.ndarray:
    if epoch not in self._perm_cache:
      if len(self._perm_cache) > 4:
        self._perm_cache.pop(min(self._perm_cache))
      if self.cfg.shuffle:
        rng = np.random.default_rng([self.cfg.seed, epoch])
        self._perm_cache[epoch] = rng.permutation(self.num_docs)
      else:
        self._perm_cache[epoch] = np.arange(self.num_docs)
    return self._perm_cache[epoch]

  def slot_documents(self, slot: int, epoch: int) -> np.ndarray:
    """Indices of the documents global slot `slot` streams in `epoch`, in stream order."""
    return self._perm(epoch)[slot::self.cfg.num_streams]

  @property
  def lengths(self) -> np.ndarray:
    if self._lengths is None:
      self._lengths = document_lengths(self.docs)
    return self._lengths

  def _extra(self) -> int:
    return int(self.cfg.bos_id is not None) + int(self.cfg.eos_id is not None)

  def _exhausted(self, epoch: int) -> bool:
    return self.cfg.num_epochs is not None and epoch >= self.cfg.num_epochs

  def _piece_sizes(self, lengths: np.ndarray) -> np.ndarray:
    """Stream tokens of documents of these lengths: BOS + doc + EOS, padded to a multiple of cfg.align."""
    a = self.cfg.align
    return -(-(np.asarray(lengths, np.int64) + self._extra()) // a) * a

  def _stream_doc(self, slot: int, cur: _Cursor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens, per-token target weights and the real-token mask of the current document's stream piece:
    BOS + doc + EOS, then padding up to a multiple of cfg.align."""
    key = (cur.epoch, cur.index)
    cache = self._doc_cache.setdefault(slot, {})
    if key in cache:
      return cache[key]
    doc_id = int(self.slot_documents(slot, cur.epoch)[cur.index])
    out = stream_piece(self.cfg, self.docs[doc_id])
    if len(cache) >= 2:  # the current document and the one the peek reached are all a slot needs
      cache.pop(next(iter(cache)))
    cache[key] = out
    return out

  def _read(self, slot: int, cur: _Cursor, n: int, advance: bool):
    """Reads n tokens of slot's stream from cur: (tokens, target weights, real mask); pads past the end."""
    tokens = np.full(n, self.cfg.pad_id, np.int32)
    weights = np.zeros(n, np.float32)
    real = np.zeros(n, bool)
    c = cur if advance else dataclasses.replace(cur)
    pos = 0
    while pos < n and not self._exhausted(c.epoch):
      ids = self.slot_documents(slot, c.epoch)
      if c.index >= len(ids):
        c.epoch, c.index, c.offset = c.epoch + 1, 0, 0
        continue
      t, w, m = self._stream_doc(slot, c)
      take = min(n - pos, len(t) - c.offset)
      tokens[pos:pos + take] = t[c.offset:c.offset + take]
      weights[pos:pos + take] = w[c.offset:c.offset + take]
      real[pos:pos + take] = m[c.offset:c.offset + take]
      pos += take
      c.offset += take
      if c.offset == len(t):
        c.index, c.offset = c.index + 1, 0
    return tokens, weights, real

  # --- iteration -------------------------------------------------------------------------------------------------
  def num_batches(self) -> int | None:
    """Batches until every global stream has ended (finite num_epochs), the same on every process."""
    if self.cfg.num_epochs is None:
      return None
    per_batch = self.cfg.k * self.cfg.seq_len
    most = 0
    for slot in range(self.cfg.num_streams):
      total = sum(int(self._piece_sizes(self.lengths[self.slot_documents(slot, e)]).sum())
                  for e in range(self.cfg.num_epochs))
      most = max(most, -(-max(total - 1, 0) // per_batch))
    return most

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._num_batches is None and self.cfg.num_epochs is not None:
      self._num_batches = self.num_batches()
    if self._num_batches is not None and self.step >= self._num_batches:
      raise StopIteration
    return self.next_batch()

  def next_batch(self) -> dict[str, np.ndarray]:
    """The local rows of the next global batch, [B_local, L] each."""
    a, b = self.slot_range
    out = batch_rows(self.cfg, b - a, lambda i, n, advance: self._read(a + i, self._cursors[i], n, advance))
    self.step += 1
    return out

  # --- state -----------------------------------------------------------------------------------------------------
  def _fingerprint(self) -> dict[str, Any]:
    c = self.cfg
    return {"batch_size": c.batch_size, "seq_len": c.seq_len, "k": c.k, "seed": c.seed, "shuffle": c.shuffle,
            "num_epochs": c.num_epochs, "bos_id": c.bos_id, "eos_id": c.eos_id, "num_docs": self.num_docs,
            **({"align_documents": True} if c.align_documents else {})}

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable state: the step count plus a fingerprint of everything the stream layout depends on."""
    return {"version": STATE_VERSION, "step": int(self.step), "fingerprint": self._fingerprint()}

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Restores to just after `state['step']` batches; any process count, only this process's documents."""
    if state.get("version") != STATE_VERSION:
      raise ValueError(f"batcher state version {state.get('version')!r} != {STATE_VERSION}")
    fp = self._fingerprint()
    saved = dict(state.get("fingerprint", {}))
    diff = {k: (saved.get(k), fp.get(k)) for k in {**saved, **fp} if saved.get(k) != fp.get(k)}
    if diff:
      raise ValueError(f"batcher state was saved with different settings (saved, now): {diff}")
    self.step = int(state["step"])
    self._num_batches = None
    self._doc_cache.clear()
    consumed = self.step * self.cfg.k * self.cfg.seq_len
    self._cursors = [self._position(slot, consumed) for slot in range(*self.slot_range)]

  def _position(self, slot: int, consumed: int) -> _Cursor:
    """Cursor of `slot` after `consumed` stream tokens, from document lengths alone."""
    epoch = 0
    while not self._exhausted(epoch):
      ids = self.slot_documents(slot, epoch)
      if consumed == 0:
        return _Cursor(epoch, 0, 0)
      sizes = self._piece_sizes(self.lengths[ids])
      total = int(sizes.sum())
      if consumed < total:
        ends = np.cumsum(sizes)
        j = int(np.searchsorted(ends, consumed, side="right"))
        return _Cursor(epoch, j, int(consumed - (ends[j - 1] if j else 0)))
      consumed -= total
      epoch += 1
    return _Cursor(epoch, 0, 0)
