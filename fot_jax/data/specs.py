"""Data sources as typed specs: one frozen dataclass per kind, each checking its own fields, with `str(spec)` the
canonical source name (fot_jax.data.source_names parses names into specs; fot_jax.data.build turns a spec into
documents).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Union

from fot_jax.data import corpora, synthetic
from fot_jax.data.tasks import TFDS_TEXT

CORPUS_NAMES = tuple(corpora.OFFLINE_CORPORA) + tuple(TFDS_TEXT)


class SpecError(ValueError):
  """A source name or spec field that is not valid; the message names the field or the text."""


def _fail(spec, field: str, expected: str, found) -> None:
  raise SpecError(f"{type(spec).__name__}.{field}: expected {expected}, found {found!r}")


def _check_int(spec, field: str, ok, expected: str) -> None:
  """Fails unless the field is an int (not a bool) for which ok(value) holds."""
  value = getattr(spec, field)
  if not isinstance(value, int) or isinstance(value, bool) or not ok(value):
    _fail(spec, field, expected, value)


def _check_text(spec, field: str, expected: str) -> None:
  value = getattr(spec, field)
  if not isinstance(value, str) or not value:
    _fail(spec, field, expected, value)


# --- corpora and files -----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CorpusSpec:
  """An offline corpus built here (stdlib, shakespeare) or a TFDS corpus the user prepared (pg19, c4)."""
  name: str

  def __post_init__(self):
    if self.name not in CORPUS_NAMES:
      _fail(self, "name", f"one of {list(CORPUS_NAMES)}", self.name)

  def __str__(self) -> str:
    return self.name


@dataclasses.dataclass(frozen=True)
class _FilesSpec:
  """Files named by a path or glob ('{split}' is replaced by the split); KIND is the name's prefix."""
  pattern: str
  KIND: ClassVar[str] = ""

  def __post_init__(self):
    _check_text(self, "pattern", "a non-empty path or glob")

  def __str__(self) -> str:
    return f"{self.KIND}:{self.pattern}"


@dataclasses.dataclass(frozen=True)
class JsonlSpec(_FilesSpec):
  """JSONL files of {"text": ...} records (fot_jax.data.corpus_files)."""
  KIND: ClassVar[str] = "jsonl"


@dataclasses.dataclass(frozen=True)
class ArrayRecordSpec(_FilesSpec):
  """ArrayRecord files of JSON {"text": ...} records."""
  KIND: ClassVar[str] = "arrayrecord"


@dataclasses.dataclass(frozen=True)
class RedPajamaSpec(_FilesSpec):
  """RedPajama JSONL (plain, .gz, .zst); without '{split}', ~1% of documents (by id hash) are validation."""
  KIND: ClassVar[str] = "redpajama"


@dataclasses.dataclass(frozen=True)
class StackSpec(_FilesSpec):
  """The Stack's code files (parquet or JSONL), one document per repository subdirectory."""
  KIND: ClassVar[str] = "stack"


@dataclasses.dataclass(frozen=True)
class InstructSpec(_FilesSpec):
  """Instruction/chat JSONL, loss on the answers only (fot_jax.data.instruct)."""
  KIND: ClassVar[str] = "instruct"


@dataclasses.dataclass(frozen=True)
class CacheSpec(_FilesSpec):
  """A token cache directory built beforehand (fot_jax.data.cache_build)."""
  KIND: ClassVar[str] = "cache"


TEXT_CORPUS_SPECS = (CorpusSpec, JsonlSpec, ArrayRecordSpec, RedPajamaSpec, StackSpec)
STREAMABLE_SPECS = (JsonlSpec, RedPajamaSpec, StackSpec)
PATH_SPECS = {s.KIND: s for s in (JsonlSpec, ArrayRecordSpec, RedPajamaSpec, StackSpec, InstructSpec, CacheSpec)}


@dataclasses.dataclass(frozen=True)
class StreamSpec:
  """A file corpus streamed without a token cache (fot_jax.data.streaming; make_batcher only)."""
  corpus: JsonlSpec | RedPajamaSpec | StackSpec

  def __post_init__(self):
    if type(self.corpus) not in STREAMABLE_SPECS:
      _fail(self, "corpus", f"a {'/'.join(s.__name__ for s in STREAMABLE_SPECS)}", self.corpus)

  def __str__(self) -> str:
    return f"stream:{self.corpus}"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """A seqio task registered by name (its token cache is built on first use)."""
  name: str

  def __post_init__(self):
    _check_text(self, "name", "a seqio task name")

  def __str__(self) -> str:
    return f"task:{self.name}"


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
  """A named mixture of corpora (fot_jax.data.build.MIXTURES: 'offline', 'longllama')."""
  name: str

  def __post_init__(self):
    _check_text(self, "name", "a mixture name")

  def __str__(self) -> str:
    return f"mixture:{self.name}"


# --- synthetic and derived sources -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PasskeySpec:
  """Passkey prompts plus answer of about U[min_len, max_len] tokens, every token with loss (derived.py)."""
  min_len: int
  max_len: int

  def __post_init__(self):
    _check_int(self, "max_len", lambda v: v > 0, "an integer > 0")
    _check_int(self, "min_len", lambda v: 0 < v <= self.max_len, f"an integer in [1, max_len={self.max_len}]")

  def __str__(self) -> str:
    return f"passkey:{self.min_len}-{self.max_len}"


@dataclasses.dataclass(frozen=True)
class LandmarkSpec:
  """The authors' passkey prompts with U[min_garbage, max_garbage] filler characters (training seeds only)."""
  min_garbage: int
  max_garbage: int
  answer_only: bool = False  # loss on the answer tokens only ('landmark_answers:')

  def __post_init__(self):
    _check_int(self, "max_garbage", lambda v: v >= 1, "an integer >= 1")
    _check_int(self, "min_garbage", lambda v: 1 <= v <= self.max_garbage,
               f"an integer in [1, max_garbage={self.max_garbage}]")
    if not isinstance(self.answer_only, bool):
      _fail(self, "answer_only", "a bool", self.answer_only)

  def __str__(self) -> str:
    return f"{'landmark_answers' if self.answer_only else 'landmark'}:{self.min_garbage}-{self.max_garbage}"


@dataclasses.dataclass(frozen=True)
class RandomSpec:
  """Documents of uniformly random token ids over num_symbols symbols."""
  num_symbols: int

  def __post_init__(self):
    _check_int(self, "num_symbols", lambda v: v >= 2, "an integer >= 2")

  def __str__(self) -> str:
    return f"random:{self.num_symbols}"


@dataclasses.dataclass(frozen=True)
class DictLookupSpec:
  """Dictionary-lookup documents of doc_len ids (synthetic.DictLookupDocuments)."""
  doc_len: int = synthetic.DICT_DEFAULT_DOC_LEN

  def __post_init__(self):
    _check_int(self, "doc_len", synthetic.dict_doc_len_ok,
               f"an even integer >= {synthetic.DICT_MIN_DOC_LEN}")

  def __str__(self) -> str:
    return "dict_lookup" if self.doc_len == synthetic.DICT_DEFAULT_DOC_LEN else f"dict_lookup:{self.doc_len}"


@dataclasses.dataclass(frozen=True)
class RepeatSpec:
  """Segments of `base` documents, of period tokens (or U[period, max_period]), repeated `repeats` times."""
  base: "Spec"
  period: int
  repeats: int
  max_period: int | None = None  # None: every segment has `period` tokens

  def __post_init__(self):
    if isinstance(self.base, (BlendSpec, StreamSpec)) or not isinstance(self.base, SPEC_TYPES):
      _fail(self, "base", "one source spec (not a blend or a stream)", self.base)
    _check_int(self, "period", lambda v: v > 0, "an integer > 0")
    if self.max_period is not None:
      _check_int(self, "max_period", lambda v: v >= self.period,
                 f"None or an integer >= period={self.period}")
    _check_int(self, "repeats", lambda v: v >= 2, "an integer >= 2")

  @property
  def periods(self) -> tuple[int, int]:
    return self.period, self.period if self.max_period is None else self.max_period

  def __str__(self) -> str:
    lo, hi = self.periods
    return f"repeat:{self.base}:{lo if lo == hi else f'{lo}-{hi}'}x{self.repeats}"


@dataclasses.dataclass(frozen=True)
class BlendPart:
  """One source of a blend and its share of the blend's tokens."""
  source: "Spec"
  share: float = 1.0

  def __post_init__(self):
    if isinstance(self.source, BlendSpec) or not isinstance(self.source, SPEC_TYPES):
      _fail(self, "source", "one source spec (not a blend)", self.source)
    if isinstance(self.share, bool) or not isinstance(self.share, (int, float)) or not math.isfinite(self.share) \
        or self.share <= 0:
      _fail(self, "share", "a finite number > 0", self.share)


@dataclasses.dataclass(frozen=True)
class BlendSpec:
  """Documents drawn from several sources so that each gets its share of the tokens."""
  parts: tuple[BlendPart, ...]

  def __post_init__(self):
    if not isinstance(self.parts, tuple) or not self.parts or not all(isinstance(p, BlendPart) for p in self.parts):
      _fail(self, "parts", "a non-empty tuple of BlendPart", self.parts)

  def __str__(self) -> str:
    return "+".join(f"{p.source}@{float(p.share)!r}" for p in self.parts)


Spec = Union[CorpusSpec, JsonlSpec, ArrayRecordSpec, RedPajamaSpec, StackSpec, InstructSpec, CacheSpec, StreamSpec,
             TaskSpec, MixtureSpec, PasskeySpec, LandmarkSpec, RandomSpec, DictLookupSpec, RepeatSpec, BlendSpec]
SPEC_TYPES = Spec.__args__
