"""The files a training config names: checked before a workdir is created, the local ones listed for the TPU
launcher.

A missing SentencePiece model or `init_from` checkpoint would otherwise fail after the workdir exists (leaving
an empty one behind) or deep inside a library, without the field's name. The launcher ships only what git
tracks, so it checks the same list against git.
"""

from __future__ import annotations

import glob
import os

from fot_jax.train.errors import ConfigError

CORPUS_FILE_PREFIXES = ("jsonl:", "arrayrecord:", "redpajama:", "stack:")
STREAM_PREFIX = "stream:"
CHECKPOINT_SUBDIR = "checkpoints"  # as fot_jax.train.checkpoint (not imported: that module loads JAX and orbax)


def is_remote(path: str) -> bool:
  return "://" in path


def vocab_is_path(name: str) -> bool:
  """True for a SentencePiece file path; False for 'byte', 'ids:<size>' and '<corpus>_sp<size>' names."""
  from fot_jax.data.vocab import parse_id_vocabulary, parse_trained_name
  if name == "byte" or parse_id_vocabulary(name) is not None:
    return False
  return not parse_trained_name(name) or name.endswith(".model")


def _sources(task: str) -> list[str]:
  """The source names of data.task: itself, or each part of a blend 'a@0.5+b@0.5' (without its rate; '+' and
  '@' inside a path stay in it: fot_jax.data.source_names.blend_parts)."""
  from fot_jax.data.source_names import blend_parts
  from fot_jax.data.specs import SpecError
  try:
    return [source for source, _ in blend_parts(task)]
  except SpecError as e:
    raise ConfigError(f"data.task: {e}") from None


def corpus_globs(task: str, splits: tuple[str, ...] = ("train",)) -> list[str]:
  """File patterns of the file corpora in data.task ('jsonl:', 'arrayrecord:', 'redpajama:', 'stack:', also
  behind 'stream:'), alone or in a blend, with '{split}' replaced by each split read."""
  patterns = []
  for source in _sources(task):
    source = source[len(STREAM_PREFIX):] if source.startswith(STREAM_PREFIX) else source
    for prefix in CORPUS_FILE_PREFIXES:
      if source.startswith(prefix):
        pattern = source[len(prefix):]
        patterns += sorted({pattern.replace("{split}", split) for split in splits})
  return patterns


def subset_globs(config, splits: tuple[str, ...] = ("train",)) -> list[tuple[str, str]]:
  """(field, pattern) of every subset of a file mixture in data.task ('mixture:longllama'), '{split}' replaced by
  each split read; the pattern is "" where the config gives none."""
  from fot_jax.data.subsets import SUBSET_MIXTURES
  given = config.data.subset_paths
  given = dict(given.items() if hasattr(given, "items") else given)
  found = []
  for source in _sources(config.data.task):
    name = source[len("mixture:"):] if source.startswith("mixture:") else None
    for subset in SUBSET_MIXTURES.get(name, ()):
      pattern = given.get(subset.name, "") or ""
      found += [(f"data.subset_paths.{subset.name}", p) for p in sorted({pattern.replace("{split}", s)
                                                                          for s in splits})]
  return found


def data_globs(config) -> list[tuple[str, str]]:
  """(field, pattern) of every file pattern the data config reads, local or remote."""
  splits = ("train", "validation") if config.eval.every_steps else ("train",)
  return ([("data.task", pattern) for pattern in corpus_globs(config.data.task, splits)]
          + subset_globs(config, splits))


def referenced_paths(config) -> list[tuple[str, str]]:
  """(field, local path or pattern) of every file the config reads: init_from, data.vocab, data.task files and
  the subset files of a file mixture."""
  found = []
  if config.init_from and not is_remote(config.init_from):
    found.append(("init_from", config.init_from))
  vocab = config.data.vocab or ""
  if vocab.startswith("hf:"):  # a Hugging Face tokenizer: a folder or its tokenizer.json
    if not is_remote(vocab[len("hf:"):]):
      found.append(("data.vocab", vocab[len("hf:"):]))
  elif vocab and vocab_is_path(vocab) and not is_remote(vocab):
    found.append(("data.vocab", vocab))
  found += [(field, pattern) for field, pattern in data_globs(config) if pattern and not is_remote(pattern)]
  return found


def check_exist(config) -> None:
  """Raises ConfigError naming the field and path of the first file the config names that is missing (data
  file patterns are checked local or remote; a file mixture's subset without a pattern is refused too)."""
  for field, path in referenced_paths(config):
    if field == "init_from" and not os.path.isdir(os.path.join(path, CHECKPOINT_SUBDIR)):
      what = "no such directory" if not os.path.exists(path) else f"no {CHECKPOINT_SUBDIR}/ directory in it"
      raise ConfigError(f"config.init_from: expected a training or conversion workdir (holding "
                        f"{CHECKPOINT_SUBDIR}/), found {path!r} ({what})")
    if field == "data.vocab" and config.data.vocab.startswith("hf:") and not os.path.exists(path):
      raise ConfigError(f"config.data.vocab: expected 'hf:<tokenizer folder or tokenizer.json>', found "
                        f"{config.data.vocab!r} (no such file or directory)")
    if field == "data.vocab" and not config.data.vocab.startswith("hf:") and not os.path.isfile(path):
      raise ConfigError(f"config.data.vocab: expected 'byte', 'ids:<size>', '<corpus>_sp<size>' or a SentencePiece "
                        f"model file, found {path!r} (no such file)")
  for field, pattern in data_globs(config):
    check_glob(field, pattern)


def check_glob(field: str, pattern: str) -> None:
  """Raises ConfigError naming the field when a data file pattern is empty or matches no file (remote patterns
  are listed through fsspec, e.g. gs:// with gcsfs)."""
  if not pattern:
    raise ConfigError(f"config.{field}: expected a path or glob of data files, found none")
  if not is_remote(pattern):
    if not glob.glob(pattern):
      raise ConfigError(f"config.{field}: no file matches {pattern!r}")
    return
  from fot_jax.data import fs
  try:
    matches = fs.glob(pattern)
  except (ImportError, ValueError, OSError) as e:
    raise ConfigError(f"config.{field}: cannot list {pattern!r} ({type(e).__name__}: {e})") from None
  if not matches:
    raise ConfigError(f"config.{field}: no file matches {pattern!r}")
