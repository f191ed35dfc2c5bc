"""The source-name syntax, a thin parser into typed specs (fot_jax.data.specs): `parse_source(text) -> spec`,
`str(spec)` -> the canonical text.

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

import re
import sys

from fot_jax.data import corpus_files
from fot_jax.data.specs import (CORPUS_NAMES, PATH_SPECS, BlendPart, BlendSpec, CorpusSpec, DictLookupSpec,
                                LandmarkSpec, MixtureSpec, PasskeySpec, RandomSpec, RepeatSpec, Spec, SpecError,
                                StreamSpec, TaskSpec)

_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][\w.-]*")


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


def _whole_number(body: str, what: str) -> int:
  """body as a non-negative integer, or the syntax error naming `what`."""
  if not body.isdigit():
    raise _bad(what, body)
  return int(body)


def _parse_random(kind: str, body: str) -> RandomSpec:
  return RandomSpec(_whole_number(body, "num_symbols"))


def _parse_repeat(kind: str, body: str) -> RepeatSpec:
  src, _, shape = body.rpartition(":")
  periods, x, repeats = shape.partition("x")
  lo, dash, hi = periods.partition("-")
  if not src or not x or not repeats.isdigit() or not lo.isdigit() or (dash and not hi.isdigit()):
    raise _bad("source and shape", body)
  return RepeatSpec(parse_single(src), int(lo), int(repeats), int(hi) if dash else None)


def _parse_dict_lookup(kind: str, body: str) -> DictLookupSpec:
  return DictLookupSpec(_whole_number(body, "doc_len"))


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
