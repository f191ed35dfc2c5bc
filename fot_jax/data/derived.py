"""Training sources built on top of other sources: passkey prompts, repeated segments, and weighted blends.

They exist for the CPU-scale reproductions of docs/RESULTS.md, where a tiny model must see data on which its
memory layer is needed to lower the loss:
  - PasskeyDocuments: Landmark/LongLLaMA passkey prompts (plus answer) of random length and depth, tokenized.
  - RandomTokenDocuments: uniformly random tokens over a small symbol set (a copy task's raw material).
  - RepeatedSegments: a random segment of a base document repeated R times, so every token after the first
    period has an exact earlier occurrence exactly `period` tokens back (in the previous chunk when
    period == data.seq_len, i.e. reachable only through memory).
Both are indexable and seeded (document i is a pure function of (seed, i)), like every batcher source.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fot_jax.data import source_names, specs, synthetic

# Tokens of the passkey prompt outside the filler, and filler tokens per sentence, in stdlib_sp2000; only used to
# pick a sentence count for a requested length (the real length is whatever the text tokenizes to).
_FIXED_TOKENS_GUESS = 90
_TOKENS_PER_SENTENCE_GUESS = 8.4


class _PromptDocuments:
  """Prompt + answer documents, tokenized on access: loss on every token, or on the answer only."""

  num_docs: int
  answer_only: bool
  _lengths: np.ndarray | None

  def __len__(self) -> int:
    return self.num_docs

  @property
  def lengths(self) -> np.ndarray:
    """Token counts (tokenizes every document once, on first use; only resume and epoch counts need them)."""
    if self._lengths is None:
      self._lengths = np.array([len(self[i]["targets"]) for i in range(self.num_docs)], np.int64)
    return self._lengths


class PasskeyDocuments(_PromptDocuments):
  """`num_docs` passkey prompts followed by their answer, of about U[min_len, max_len] tokens each.

  The key (1..50000), depth (U[0, 1]) and length come from default_rng([seed, i]). With answer_only the loss
  weights are 1 on the answer tokens only (the evaluation's scoring); otherwise every token carries loss, which
  lets a small model learn the filler and copying quickly before the answer.
  """

  def __init__(self, encode: Callable[[str], Sequence[int]], num_docs: int, min_len: int, max_len: int,
               seed: int = 0, answer_only: bool = False):
    if not 0 < min_len <= max_len:
      raise ValueError(f"passkey training lengths need 0 < min_len <= max_len, got {min_len}..{max_len}")
    self.encode, self.num_docs, self.seed, self.answer_only = encode, int(num_docs), seed, answer_only
    self.min_len, self.max_len = int(min_len), int(max_len)
    self._lengths: np.ndarray | None = None

  def example(self, i: int) -> synthetic.PasskeyExample:
    if not 0 <= i < self.num_docs:
      raise IndexError(i)
    rng = np.random.default_rng([self.seed, i])
    key = int(rng.integers(1, synthetic.PASSKEY_MAX_KEY + 1))
    depth = float(rng.uniform())
    length = int(rng.integers(self.min_len, self.max_len + 1))
    sentences = max(0, int((length - _FIXED_TOKENS_GUESS) / _TOKENS_PER_SENTENCE_GUESS))
    return synthetic.passkey_at(key, depth, sentences)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    ex = self.example(i)
    return synthetic.passkey_document(self.encode, ex.prompt, ex.answer, self.answer_only)


# Generator seeds of landmark training prompts start here: evaluations use the authors' small seeds (0, 1, ...),
# so no training prompt is ever an evaluation prompt. numpy's legacy seeds must stay below 2**32.
LANDMARK_TRAIN_SEED_BASE = 2_000_000_000
LANDMARK_SEEDS_PER_SPLIT = 1_000_000


class LandmarkPasskeyDocuments(_PromptDocuments):
  """`num_docs` passkey prompts from the authors' generator (synthetic.landmark_prompt) plus their answer.

  Document i uses n_garbage ~ U[min_garbage, max_garbage] filler characters (drawn from default_rng([seed, i]))
  and generator seed LANDMARK_TRAIN_SEED_BASE + seed * LANDMARK_SEEDS_PER_SPLIT + i, disjoint from evaluation
  seeds. Every token carries loss (the filler is learned at once; the answer needs retrieval), or with
  answer_only only the answer tokens do.
  """

  def __init__(self, encode: Callable[[str], Sequence[int]], num_docs: int, min_garbage: int, max_garbage: int,
               seed: int = 0, answer_only: bool = False):
    if not 1 <= min_garbage <= max_garbage:
      raise ValueError(f"landmark training prompts need 1 <= min_garbage <= max_garbage characters, got "
                       f"{min_garbage}..{max_garbage}")
    if not 0 <= seed < (2**32 - LANDMARK_TRAIN_SEED_BASE) // LANDMARK_SEEDS_PER_SPLIT or num_docs > \
        LANDMARK_SEEDS_PER_SPLIT:
      raise ValueError(f"landmark training prompts: seed {seed} / num_docs {num_docs} leave numpy's seed range")
    self.encode, self.num_docs, self.seed, self.answer_only = encode, int(num_docs), int(seed), answer_only
    self.min_garbage, self.max_garbage = int(min_garbage), int(max_garbage)
    self._lengths: np.ndarray | None = None

  def generator_args(self, i: int) -> tuple[int, int]:
    """(n_garbage, generator seed) of document i."""
    if not 0 <= i < self.num_docs:
      raise IndexError(i)
    n_garbage = int(np.random.default_rng([self.seed, i, 0x6c6d]).integers(self.min_garbage,
                                                                             self.max_garbage + 1))
    return n_garbage, LANDMARK_TRAIN_SEED_BASE + self.seed * LANDMARK_SEEDS_PER_SPLIT + i

  def prompt(self, i: int) -> tuple[str, str]:
    return synthetic.landmark_prompt(*self.generator_args(i))

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    text, key = self.prompt(i)
    return synthetic.passkey_document(self.encode, text, " " + key, self.answer_only)


class RandomTokenDocuments:
  """`num_docs` documents of `length` tokens drawn uniformly from ids [first_id, first_id + num_symbols).

  Under 'repeat:' they make a copy task without any statistics to fall back on: only retrieval lowers the loss,
  and a key must hold enough preceding tokens to tell its own context from other documents' (a 1-token key
  collides with other contexts at rate L/num_symbols per context, a 2-token key at L/num_symbols^2).
  """

  def __init__(self, num_docs: int, length: int, num_symbols: int, first_id: int = 3, seed: int = 0):
    if num_docs <= 0 or length <= 0 or num_symbols < 2:
      raise ValueError(f"random documents need num_docs > 0, length > 0 and num_symbols >= 2, got {num_docs}, "
                       f"{length}, {num_symbols}")
    self.num_docs, self.length, self.num_symbols = int(num_docs), int(length), int(num_symbols)
    self.first_id, self.seed = int(first_id), seed

  def __len__(self) -> int:
    return self.num_docs

  @property
  def lengths(self) -> np.ndarray:
    return np.full(self.num_docs, self.length, np.int64)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    if not 0 <= i < self.num_docs:
      raise IndexError(i)
    rng = np.random.default_rng([self.seed, i, 0x726e64])
    return {"targets": (rng.integers(0, self.num_symbols, self.length) + self.first_id).astype(np.int32)}


class RepeatedSegments:
  """Document i: a P_i-token segment of a random base document (at a random offset), repeated `repeats` times.
  P_i is `period`, or drawn uniformly from [period, max_period]: a varying period makes a model find the earlier
  copy by content (induction) instead of reading a fixed distance back. Base documents shorter than the largest
  period are skipped; their loss weights, if any, are dropped."""

  def __init__(self, base, period: int, repeats: int, num_docs: int | None = None, seed: int = 0,
               max_period: int | None = None):
    max_period = period if max_period is None else max_period
    if period <= 0 or repeats < 2 or max_period < period:
      raise ValueError(f"repeated segments need 0 < period <= max_period and repeats >= 2, got period={period}, "
                       f"max_period={max_period}, repeats={repeats}")
    lengths = np.asarray(base.lengths if hasattr(base, "lengths") else [len(base[i]["targets"])
                                                                         for i in range(len(base))])
    self.eligible = np.flatnonzero(lengths >= max_period)
    if len(self.eligible) == 0:
      raise ValueError(f"no base document has at least period={max_period} tokens")
    self.base, self.base_lengths = base, lengths
    self.period, self.max_period, self.repeats, self.seed = int(period), int(max_period), int(repeats), seed
    mean_period = (self.period + self.max_period) / 2
    # ~one segment per period base tokens: an epoch sees about as many distinct tokens as the base corpus
    self.num_docs = (int(num_docs) if num_docs is not None
                     else max(1, int(lengths[self.eligible].sum() // mean_period)))
    if self.max_period == self.period:
      self.periods = np.full(self.num_docs, self.period, np.int64)
    else:
      self.periods = np.random.default_rng([seed, 0x706572]).integers(self.period, self.max_period + 1,
                                                                       self.num_docs)

  def __len__(self) -> int:
    return self.num_docs

  @property
  def lengths(self) -> np.ndarray:
    return self.periods * self.repeats

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    if not 0 <= i < self.num_docs:
      raise IndexError(i)
    period = int(self.periods[i])
    rng = np.random.default_rng([self.seed, i, 0x726570])
    j = int(self.eligible[rng.integers(len(self.eligible))])
    start = int(rng.integers(self.base_lengths[j] - period + 1))
    doc = self.base[j]
    tokens = np.asarray(doc["targets"] if isinstance(doc, dict) else doc, np.int32)
    return {"targets": np.tile(tokens[start:start + period], self.repeats)}


def document_rates(token_shares: Sequence[float], srcs: Sequence) -> list[float]:
  """Per-document draw rates giving each source its share of *tokens* (sources' mean lengths differ a lot:
  a stdlib document averages ~88k tokens, a repeated segment a few hundred)."""
  means = [float(np.mean(np.asarray(s.lengths))) for s in srcs]
  return [share / mean for share, mean in zip(token_shares, means)]


def parse_blend(name: str) -> list[tuple[str, float]]:
  """'a@0.5+b@0.5' -> [('a', 0.5), ('b', 0.5)]: token shares; a part without '@rate' gets share 1
  (source_names.blend_parts: '+' and '@' inside a path stay in it)."""
  return [(src, 1.0 if rate is None else rate) for src, rate in source_names.blend_parts(name)]


def parse_random(name: str) -> int:
  """'random:<num_symbols>' -> num_symbols."""
  return _parse(name, specs.RandomSpec).num_symbols


def parse_repeat(name: str) -> tuple[str, int, int, int]:
  """'repeat:<source>:<period>x<repeats>' or 'repeat:<source>:<min>-<max>x<repeats>' (period drawn per document)
  -> (source, period, max_period, repeats), the source in its canonical form."""
  spec = _parse(name, specs.RepeatSpec)
  return (str(spec.base), *spec.periods, spec.repeats)


def parse_passkey(name: str) -> tuple[int, int]:
  """'passkey:<max>' (lengths U[max/4, max]) or 'passkey:<min>-<max>' -> (min_len, max_len) in tokens."""
  spec = _parse(name, specs.PasskeySpec)
  return spec.min_len, spec.max_len


def parse_landmark(name: str) -> tuple[int, int, bool]:
  """'landmark:<min>-<max>' or 'landmark_answers:<min>-<max>' (answer-only loss) -> (min, max, answer_only),
  in filler characters (the authors' n_garbage)."""
  spec = _parse(name, specs.LandmarkSpec)
  return spec.min_garbage, spec.max_garbage, spec.answer_only


def _parse(name: str, kind: type):
  """The spec of a one-source name, which must be of the given kind."""
  spec = source_names.parse_single(name)
  if not isinstance(spec, kind):
    raise specs.SpecError(f"{name!r}: expected a {kind.__name__} name, found a {type(spec).__name__}")
  return spec
