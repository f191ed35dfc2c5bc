"""Fake runners for evaluator tests: they satisfy fot_jax.eval.common.Runner without a transformer.

InductionRunner predicts the token that followed the most recent earlier occurrence of the longest suffix of
what it has seen (an "induction head" oracle): it solves passkey and dictionary lookup when it can see the
whole history, and fails when its history is limited to a window (a model without memory).
"""

from __future__ import annotations

import numpy as np


class FakeRunner:
  def __init__(self, vocab_size: int, batch: int = 1, window: int = 32):
    self.vocab_size, self.batch, self.window = vocab_size, batch, window
    self.reset()

  def reset(self):
    self.history = [[] for _ in range(self.batch)]

  @property
  def memory_size(self) -> int:
    return max(0, len(self.history[0]) - self.window)

  def windows(self, length):
    return [(s, min(s + self.window, length)) for s in range(0, length, self.window)]

  def flush(self):
    """Nothing to evict: the fake keeps no cache."""

  def step(self, tokens, valid=None):
    tokens = np.asarray(tokens)
    out = np.zeros(tokens.shape + (self.vocab_size,), np.float32)
    for b in range(tokens.shape[0]):
      for t in range(tokens.shape[1]):
        self.history[b].append(int(tokens[b, t]))
        out[b, t] = self.logits(self.history[b], b)
    return out

  def logits(self, history, b):
    return np.zeros(self.vocab_size, np.float32)  # uniform


class InductionRunner(FakeRunner):
  def __init__(self, vocab_size, batch=1, window=32, lookback=None, max_suffix=24):
    self.lookback, self.max_suffix = lookback, max_suffix
    super().__init__(vocab_size, batch, window)

  def logits(self, history, b):
    seen = history if self.lookback is None else history[-self.lookback:]
    out = np.zeros(self.vocab_size, np.float32)
    n = len(seen)
    for size in range(min(self.max_suffix, n - 1), 0, -1):
      suffix = seen[n - size:]
      for start in range(n - size - 1, -1, -1):
        if seen[start:start + size] == suffix:
          out[seen[start + size]] = 1.0
          return out
    return out


class RandomRunner(FakeRunner):
  """Random logits over ids [lo, hi): a guessing model (chance level)."""

  def __init__(self, vocab_size, lo, hi, batch=1, seed=0):
    self.rng, self.lo, self.hi = np.random.default_rng(seed), lo, hi
    super().__init__(vocab_size, batch)

  def logits(self, history, b):
    out = np.full(self.vocab_size, -1e9, np.float32)
    out[self.lo:self.hi] = self.rng.normal(size=self.hi - self.lo)
    return out


class ByteVocab:
  """A seqio-free byte vocabulary (ids = bytes + 3, BOS 1) so tests need no TensorFlow."""

  vocab_size = 259
  bos_id, eos_id = 1, 2

  def encode(self, text):
    return [b + 3 for b in text.encode("utf-8")]

  def decode(self, ids):
    return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", errors="replace")
