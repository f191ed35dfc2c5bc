"""The local files a training config names: checked before a workdir is created, listed for the TPU launcher.

A missing SentencePiece model or `init_from` checkpoint would otherwise fail after the workdir exists (leaving
an empty one behind) or deep inside a library, without the field's name. The launcher ships only what git
tracks, so it checks the same list against git.
"""

from __future__ import annotations

import glob
import os

from fot_jax.train.errors import ConfigError

CORPUS_FILE_PREFIXES = ("jsonl:", "arrayrecord:")
CHECKPOINT_SUBDIR = "checkpoints"  # as fot_jax.train.checkpoint (not imported: that module loads JAX and orbax)


def is_remote(path: str) -> bool:
  return "://" in path


def vocab_is_path(name: str) -> bool:
  """True for a SentencePiece file path; False for 'byte', 'ids:<size>' and '<corpus>_sp<size>' names."""
  from fot_jax.data.vocab import parse_id_vocabulary, parse_trained_name
  if name == "byte" or parse_id_vocabulary(name) is not None:
    return False
  return not parse_trained_name(name) or name.endswith(".model")


def corpus_globs(task: str, splits: tuple[str, ...] = ("train",)) -> list[str]:
  """File patterns of 'jsonl:<glob>' / 'arrayrecord:<glob>' sources in data.task (alone or in a blend), with
  '{split}' replaced by each split read."""
  patterns = []
  for part in task.split("+"):
    source = part.rsplit("@", 1)[0] if "@" in part else part
    for prefix in CORPUS_FILE_PREFIXES:
      if source.startswith(prefix):
        pattern = source[len(prefix):]
        patterns += sorted({pattern.replace("{split}", split) for split in splits})
  return patterns


def referenced_paths(config) -> list[tuple[str, str]]:
  """(field, local path or pattern) of every file the config reads: init_from, data.vocab, data.task files."""
  found = []
  if config.init_from and not is_remote(config.init_from):
    found.append(("init_from", config.init_from))
  vocab = config.data.vocab or ""
  if vocab.startswith("hf:"):  # a Hugging Face tokenizer: a folder or its tokenizer.json
    if not is_remote(vocab[len("hf:"):]):
      found.append(("data.vocab", vocab[len("hf:"):]))
  elif vocab and vocab_is_path(vocab) and not is_remote(vocab):
    found.append(("data.vocab", vocab))
  splits = ("train", "validation") if config.eval.every_steps else ("train",)
  found += [("data.task", pattern) for pattern in corpus_globs(config.data.task, splits) if not is_remote(pattern)]
  return found


def check_exist(config) -> None:
  """Raises ConfigError naming the field and path of the first local file the config names that is missing."""
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
    if field == "data.task" and not glob.glob(path):
      raise ConfigError(f"config.data.task: no file matches {path!r}")
