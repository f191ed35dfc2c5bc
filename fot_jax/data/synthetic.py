"""Synthetic tasks (docs/BEHAVIOUR.md section 5): dictionary lookup documents and passkey prompts, both seeded.

Both are indexable document sources (document i is a pure function of (seed, i)), so they feed the batcher on
any number of processes. Every dictionary-lookup split goes through `dict_lookup_documents` and every passkey
document (training source or evaluation case) through `passkey_document`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

# --- dictionary lookup ----------------------------------------------------------------------------------------
# ids 0..2 stay LLaMA's <unk>, <s>, </s> so the batcher's BOS/EOS joins mean the same thing as for text.
DICT_K, DICT_V, DICT_Q, DICT_FILL = 3, 4, 5, 6
DICT_FIRST_SYMBOL = 7
DICT_NUM_SYMBOLS = 64
DICT_VOCAB_SIZE = DICT_FIRST_SYMBOL + DICT_NUM_SYMBOLS  # 71
DICT_KEY_LEN = 4
DICT_DEFAULT_DOC_LEN = 512
DICT_MIN_DOC_LEN = 4 * (2 + 2 * DICT_KEY_LEN)  # 40: two records per half

# Generator seeds of a synthetic source's splits: disjoint documents per (run seed, split).
SYNTHETIC_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


def split_seed(seed: int, split: str) -> int:
  """The generator seed of a synthetic source's split (KeyError for an unknown split)."""
  return seed * 1000 + SYNTHETIC_SPLIT_SEEDS[split]


def dict_doc_len_ok(doc_len: int) -> bool:
  return doc_len >= DICT_MIN_DOC_LEN and doc_len % 2 == 0


@dataclasses.dataclass(frozen=True)
class DictLookupDocuments:
  """Documents `<k> k1..k4 <v> v1..v4` x n, then queries `<q> k1..k4 <v> v1..v4` with loss only on v1..v4.

  Each half of a `doc_len`-token document holds (doc_len/2)//10 records padded with a filler token to doc_len/2,
  so queries always start at doc_len/2. Every defined key is queried once, in a random order.
  """

  num_docs: int
  seed: int = 0
  doc_len: int = DICT_DEFAULT_DOC_LEN

  def __post_init__(self):
    if not dict_doc_len_ok(self.doc_len):
      raise ValueError(f"DictLookupDocuments.doc_len must be even and >= {DICT_MIN_DOC_LEN}, got {self.doc_len}")

  def __len__(self) -> int:
    return self.num_docs

  @property
  def lengths(self) -> np.ndarray:
    return np.full(self.num_docs, self.doc_len, np.int64)

  @property
  def records(self) -> int:
    return (self.doc_len // 2) // (2 + 2 * DICT_KEY_LEN)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    if not 0 <= i < self.num_docs:
      raise IndexError(i)
    rng = np.random.default_rng([self.seed, i])
    n, half = self.records, self.doc_len // 2
    keys: set[tuple[int, ...]] = set()
    while len(keys) < n:
      keys.add(tuple(rng.integers(0, DICT_NUM_SYMBOLS, DICT_KEY_LEN).tolist()))
    k = np.array(sorted(keys)) + DICT_FIRST_SYMBOL
    k = k[rng.permutation(n)]
    v = rng.integers(0, DICT_NUM_SYMBOLS, (n, DICT_KEY_LEN)) + DICT_FIRST_SYMBOL
    tokens = np.full(self.doc_len, DICT_FILL, np.int32)
    weights = np.zeros(self.doc_len, np.float32)
    rec = 2 + 2 * DICT_KEY_LEN
    for j in range(n):
      tokens[j * rec:(j + 1) * rec] = [DICT_K, *k[j], DICT_V, *v[j]]
    for pos, j in enumerate(rng.permutation(n)):
      start = half + pos * rec
      tokens[start:start + rec] = [DICT_Q, *k[j], DICT_V, *v[j]]
      weights[start + rec - DICT_KEY_LEN:start + rec] = 1.0
    return {"targets": tokens, "loss_weights": weights}


def dict_lookup_documents(num_docs: int, split: str, seed: int = 0,
                          doc_len: int = DICT_DEFAULT_DOC_LEN) -> DictLookupDocuments:
  """The dictionary-lookup documents of a split (training source, seqio task and evaluation alike)."""
  return DictLookupDocuments(num_docs, seed=split_seed(seed, split), doc_len=doc_len)


# --- passkey retrieval -----------------------------------------------------------------------------------------
PASSKEY_INSTRUCTION = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
                       "them. I will quiz you about the important information there.")
PASSKEY_FILLER = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
                  "There and back again.")
PASSKEY_QUESTION = "What is the pass key? The pass key is"
PASSKEY_MAX_KEY = 50000


LANDMARK_FILLER_REPEATS = 5000  # the filler block is repeated this often before it is cut by characters


def landmark_prompt(n_garbage: int, seed: int) -> tuple[str, str]:
  """The Landmark Attention / LongLLaMA passkey prompt for `n_garbage` filler characters: (text, pass key).

  Byte for byte the authors' generator: numpy's global generator is seeded with `seed` (and restored after),
  the key line goes after randint(0, n_garbage) filler characters, the rest of the filler follows it, both
  cut by characters from the start of the repeated filler; the key is randint(1, 50000).
  """
  if n_garbage < 1:
    raise ValueError(f"landmark_prompt: n_garbage must be >= 1 (numpy's randint(0, n_garbage)), got {n_garbage}")
  block = " ".join(PASSKEY_FILLER)
  filler = " ".join([block] * LANDMARK_FILLER_REPEATS)
  if n_garbage > len(filler):
    raise ValueError(f"landmark_prompt: n_garbage={n_garbage} exceeds the filler's {len(filler)} characters")
  state = np.random.get_state()
  try:
    np.random.seed(seed)
    prefix = np.random.randint(0, n_garbage)
    suffix = n_garbage - prefix
    key = np.random.randint(1, PASSKEY_MAX_KEY)
  finally:
    np.random.set_state(state)
  info = f"The pass key is {key}. Remember it. {key} is the pass key."
  return "\n".join([PASSKEY_INSTRUCTION, filler[:prefix], info, filler[:suffix], PASSKEY_QUESTION]), str(key)


def answer_in_place(encode: Callable[[str], Sequence[int]], prompt: str, prompt_ids: Sequence[int],
                    answer: str) -> list[int]:
  """The tokens of `answer` where they follow `prompt`: encode(prompt + answer) minus the prompt's tokens.

  Tokenizing the answer alone can differ: stdlib_sp2000 (a SentencePiece model that, like LLaMA's, keeps
  repeated whitespace) encodes " 15338" alone as '▁▁', '1', ... where "...is 15338" has '▁', '1', ....
  """
  full = list(encode(prompt + answer))
  n = len(prompt_ids)
  if full[:n] != list(prompt_ids) or len(full) == n:
    raise ValueError(f"the vocabulary tokenizes the prompt differently when {answer!r} follows it; cannot split "
                     "the answer tokens off")
  return full[n:]


def passkey_document(encode: Callable[[str], Sequence[int]], prompt: str, answer: str, answer_only: bool = True,
                     bos: Sequence[int] = ()) -> dict[str, np.ndarray]:
  """The one passkey document: bos + encode(prompt) + the answer's tokens where they follow the prompt.

  With answer_only, 'loss_weights' are 1 on the answer tokens only (what evaluation scores); otherwise there are
  no loss weights and every token carries loss."""
  prompt_ids = list(encode(prompt))
  head = np.asarray([*bos, *prompt_ids], np.int32)
  answer_ids = np.asarray(answer_in_place(encode, prompt, prompt_ids, answer), np.int32)
  out = {"targets": np.concatenate([head, answer_ids])}
  if answer_only:
    out["loss_weights"] = np.concatenate([np.zeros(len(head), np.float32), np.ones(len(answer_ids), np.float32)])
  return out


@dataclasses.dataclass(frozen=True)
class PasskeyExample:
  prompt: str  # ends with PASSKEY_QUESTION; the model should continue with " <key>"
  key: int
  depth: float  # requested fraction of the filler placed before the key line
  prefix_sentences: int
  suffix_sentences: int

  @property
  def answer(self) -> str:
    return f" {self.key}"


def _filler(n: int) -> str:
  return " ".join(PASSKEY_FILLER[i % len(PASSKEY_FILLER)] for i in range(n))


def passkey_text(key: int, prefix_sentences: int, suffix_sentences: int) -> str:
  """The Landmark/LongLLaMA prompt: instruction, filler, key line, filler, question, joined by newlines."""
  return "\n".join([PASSKEY_INSTRUCTION, _filler(prefix_sentences),
                    f"The pass key is {key}. Remember it. {key} is the pass key.", _filler(suffix_sentences),
                    PASSKEY_QUESTION])


def passkey_at(key: int, depth: float, sentences: int) -> PasskeyExample:
  """The prompt with `sentences` filler sentences, round(depth * sentences) of them before the key line."""
  pre = int(round(depth * sentences))
  return PasskeyExample(passkey_text(key, pre, sentences - pre), key, depth, pre, sentences - pre)


def passkey_example(seed: int, length: int, depth: float | None = None,
                    measure: Callable[[str], int] = len) -> PasskeyExample:
  """The longest prompt with measure(prompt) <= length (chars by default; pass a token counter for tokens).

  The key (1..50000) and, unless given, the depth come from default_rng([seed, length]); filler is whole
  sentences, split prefix/suffix by depth. Deterministic given (seed, length, depth, measure).
  """
  rng = np.random.default_rng([seed, length])
  key = int(rng.integers(1, PASSKEY_MAX_KEY + 1))
  depth = float(rng.uniform()) if depth is None else float(depth)
  if not 0.0 <= depth <= 1.0:
    raise ValueError(f"passkey depth must be in [0, 1], got {depth}")

  def fits(n):
    return measure(passkey_at(key, depth, n).prompt) <= length

  if not fits(0):
    raise ValueError(f"passkey length={length} is shorter than the prompt without filler "
                     f"({measure(passkey_text(key, 0, 0))})")
  hi = 1
  while fits(hi):
    hi *= 2
  lo = hi // 2  # fits(lo), not fits(hi)
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if fits(mid) else (lo, mid)
  return passkey_at(key, depth, lo)
