"""Data sources as typed specs (one frozen dataclass per kind, each checking its own fields) and the source-name
syntax that parses into them: `parse_source(text) -> spec`, `str(spec)` -> the canonical text.

Grammar (docs/DATA.md, "Source names"):
  source  := part ('+' part)*                 several parts, or one part with a share, make a blend
  part    := single ['@' share]               share: a number > 0 (a share of tokens)
  single  := '<kind>:<body>' (kind in KINDS) | a corpus name | 'dict_lookup' | a registered seqio task name
A '+' or '@' inside a path is part of the path: after a part that holds a path (jsonl:, arrayrecord:, redpajama:,
stack:, instruct:, cache:, also under repeat: or stream:), '+' starts a new part only when the text after it
starts a source (a known kind prefix, a known name, or 'name@<number>'), and '@' ends the path only when a number
follows it. fot_jax.data.build turns a spec into documents.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from typing import ClassVar, Union

from fot_jax.data import corpora, corpus_files, synthetic
from fot_jax.data.tasks import TFDS_TEXT

CORPUS_NAMES = tuple(corpora.OFFLINE_CORPORA) + tuple(TFDS_TEXT)
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][\w.-]*")


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


# --- the string syntax -------------------------------------------------------------------------------------------
SYNTAX = {
    "passkey": "'passkey:<max_tokens>' or 'passkey:<min>-<max>', e.g. 'passkey:512'",
    "landmark": "'landmark:<min_chars>-<max_chars>' or 'landmark_answers:<min>-<max>' with 1 <= min <= max filler "
                "characters, e.g. 'landmark:200-900'",
    "random": "'random:<num_symbols>' with num_symbols >= 2, e.g. 'random:256'",
    "repeat": "'repeat:<source>:<period>x<repeats>' or 'repeat:<source>:<min_period>-<max_period>x<repeats>' "
              "(min <= max), e.g. 'repeat:stdlib:64x4' or 'repeat:random:64:8-24x4'",
    "dict_lookup": "'dict_lookup' or 'dict_lookup:<doc_len>', e.g. 'dict_lookup:128'",
    "stream": f"'stream:<kind>:<glob>' with kind one of {list(corpus_files.KINDS)}",
    "task": "'task:<registered seqio task name>'",
    "mixture": "'mixture:<name>', e.g. 'mixture:offline'",
    **{kind: f"'{kind}:<path or glob>'" for kind in PATH_SPECS},
}
SYNTAX["landmark_answers"] = SYNTAX["landmark"]
KINDS = tuple(SYNTAX)


def _registered_task(name: str) -> bool:
  """Whether seqio has a task of this name (none can be registered before seqio is imported: no import here)."""
  seqio = sys.modules.get("seqio")
  return seqio is not None and name in seqio.TaskRegistry.names()


def _known_name(name: str) -> bool:
  return name in CORPUS_NAMES or name == "dict_lookup" or _registered_task(name)


def _holds_path(part: str) -> bool:
  """Whether a part names files (so '+' and '@' may belong to its path)."""
  while part.startswith(("repeat:", "stream:")):
    part = part.split(":", 1)[1]
  return part.partition(":")[0] in PATH_SPECS


def _numeric_share(part: str) -> tuple[str, str | None]:
  """(source, share text) when the part ends in '@<number>', else (part, None)."""
  src, at, share = part.rpartition("@")
  return (src, share) if at and _NUMBER.fullmatch(share) else (part, None)


def _split_share(part: str) -> tuple[str, str | None]:
  """(source, share text or None): in a path only a number after the last '@' is a share, elsewhere any text is."""
  if _holds_path(part):
    return _numeric_share(part)
  src, at, share = part.rpartition("@")
  return (src, share) if at else (part, None)


def _starts_source(piece: str) -> bool:
  """Whether text after a '+' starts a blend part: a kind prefix, a known name, or 'name@<number>'."""
  head, colon, _ = piece.partition(":")
  if colon and head in KINDS:
    return True
  name, share = _numeric_share(piece)
  return _known_name(name) or (share is not None and _NAME.fullmatch(name) is not None)


def blend_parts(text: str) -> list[tuple[str, float | None]]:
  """The parts of a source name with their shares ('a@0.5+b' -> [('a', 0.5), ('b', None)]); one part for a
  single source. '@' always ends a part's source, except in a part that holds a path (see module doc)."""
  pieces = text.split("+")
  parts = [pieces[0]]
  for piece in pieces[1:]:
    if _holds_path(parts[-1]) and not _starts_source(piece):
      parts[-1] += "+" + piece
    else:
      parts.append(piece)
  out = []
  for part in parts:
    src, share = _split_share(part)
    rate = None
    if share is not None:
      try:
        rate = float(share)
      except ValueError:
        raise SpecError(f"blend {text!r}: rate {share!r} of {src!r} is not a number") from None
    if not src or (rate is not None and not rate > 0):
      raise SpecError(f"blend {text!r}: each part needs a source name and a rate > 0, got {part!r}")
    out.append((src, rate))
  return out


def parse_source(text: str) -> Spec:
  """The spec a source name stands for (see module doc); SpecError naming the text or field when invalid."""
  if not isinstance(text, str) or not text:
    raise SpecError(f"data source: expected a source name such as 'stdlib' or 'jsonl:<glob>', found {text!r}")
  parts = blend_parts(text)
  if len(parts) == 1 and parts[0][1] is None:
    return parse_single(text)
  return BlendSpec(tuple(BlendPart(parse_single(src), 1.0 if rate is None else rate) for src, rate in parts))


def parse_single(text: str) -> Spec:
  """The spec of one source (no blend): '<kind>:<body>' or a bare name."""
  kind, colon, body = text.partition(":")
  if colon and kind in KINDS:
    try:
      return _PARSERS.get(kind, _parse_path)(kind, body)
    except SpecError as e:
      raise SpecError(f"{text!r}: {e}; syntax: {SYNTAX[kind]}") from None
  if text == "dict_lookup":
    return DictLookupSpec()
  if text in CORPUS_NAMES:
    return CorpusSpec(text)
  if _registered_task(text):
    return TaskSpec(text)
  raise SpecError(f"unknown data source {text!r}: expected a corpus ({', '.join(CORPUS_NAMES)}), 'dict_lookup', a "
                  f"registered seqio task (or 'task:<name>'), or '<kind>:...' with kind one of {list(KINDS)}")


def _bad(what: str, found: str) -> SpecError:
  return SpecError(f"{what} {found!r} is not valid")


def _int_range(body: str, what: str) -> tuple[int, int]:
  """'<lo>-<hi>' -> (lo, hi), digits only."""
  lo, dash, hi = body.partition("-")
  if not dash or not lo.isdigit() or not hi.isdigit():
    raise _bad(what, body)
  return int(lo), int(hi)


def _parse_passkey(kind: str, body: str) -> PasskeySpec:
  lo, _, hi = body.rpartition("-")
  try:
    hi_i = int(hi)
    lo_i = int(lo) if lo else max(1, hi_i // 4)
  except ValueError:
    raise _bad("length", body) from None
  return PasskeySpec(lo_i, hi_i)


def _parse_landmark(kind: str, body: str) -> LandmarkSpec:
  return LandmarkSpec(*_int_range(body, "filler range"), answer_only=kind == "landmark_answers")


def _parse_random(kind: str, body: str) -> RandomSpec:
  if not body.isdigit():
    raise _bad("num_symbols", body)
  return RandomSpec(int(body))


def _parse_repeat(kind: str, body: str) -> RepeatSpec:
  src, _, shape = body.rpartition(":")
  periods, x, repeats = shape.partition("x")
  lo, dash, hi = periods.partition("-")
  if not src or not x or not repeats.isdigit() or not lo.isdigit() or (dash and not hi.isdigit()):
    raise _bad("source and shape", body)
  return RepeatSpec(parse_single(src), int(lo), int(repeats), int(hi) if dash else None)


def _parse_dict_lookup(kind: str, body: str) -> DictLookupSpec:
  if not body.isdigit():
    raise _bad("doc_len", body)
  return DictLookupSpec(int(body))


def _parse_stream(kind: str, body: str) -> StreamSpec:
  inner, colon, pattern = body.partition(":")
  if not colon or inner not in corpus_files.KINDS:
    raise _bad("streamed corpus", body)
  return StreamSpec(PATH_SPECS[inner](pattern))


def _parse_path(kind: str, body: str):
  return PATH_SPECS[kind](body)


_PARSERS = {"passkey": _parse_passkey, "landmark": _parse_landmark, "landmark_answers": _parse_landmark,
            "random": _parse_random, "repeat": _parse_repeat, "dict_lookup": _parse_dict_lookup,
            "stream": _parse_stream, "task": lambda kind, body: TaskSpec(body),
            "mixture": lambda kind, body: MixtureSpec(body)}
