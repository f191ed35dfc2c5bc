"""seqio tasks that return whole documents (`sequence_length=None`), and mixtures with per-subset minimum lengths.

Every text corpus goes through one code path (`register_text_task`): source -> rekey to 'targets' -> tokenize
(no EOS: the batcher joins documents with EOS+BOS) -> drop documents shorter than min_length. Sources:
offline corpora built into TFDS here (stdlib, shakespeare), TFDS datasets users prepare themselves (pg19, c4),
RedPajama-style JSONL / ArrayRecord files of {"text": ...} records, and The Stack's code files
(fot_jax.data.corpus_files). Tasks are registered per vocabulary, because a seqio task binds its vocabulary;
names are 'fot.<corpus>.<vocab>.min<n>'. `task_documents` reads one shard of a split (every N-th source example)
and tags each document with its source position, so a cache built in N pieces orders like one built at once.
seqio's last release is mid-2025: nothing outside fot_jax/data imports it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from typing import Any, Iterator, Sequence

import numpy as np

from fot_jax.data import corpora, corpus_files, synthetic
from fot_jax.data.subsets import LONGLLAMA_SUBSETS, SUBSET_PATHS_FIELD, Subset  # noqa: F401 (re-exported)
from fot_jax.data.synthetic import SYNTHETIC_SPLIT_SEEDS, split_seed

# name -> (tfds name, text feature); used when the user has prepared these TFDS datasets in the data dir.
TFDS_TEXT = {
    "pg19": ("pg19:0.1.1", "book_text"),
    "c4": ("c4/en:3.0.1", "text"),
}
FILE_KINDS = ("arrayrecord",) + corpus_files.KINDS
POSITION = "position"  # the source position a document carries through a text task's preprocessors


def _seqio():
  import seqio
  return seqio


def vocab_tag(vocab) -> str:
  """Short stable name of a vocabulary for task names: 'byte', '<model basename>_<content hash>' or
  'hf_<content hash>'."""
  seqio = _seqio()
  if isinstance(vocab, seqio.ByteVocabulary):
    return "byte"
  if isinstance(vocab, seqio.SentencePieceVocabulary):
    base = os.path.basename(vocab.sentencepiece_model_file).replace(".model", "")
    digest = hashlib.sha1(vocab.sp_model).hexdigest()[:8]
    return "".join(c if c.isalnum() or c == "_" else "_" for c in base) + "_" + digest
  if isinstance(vocab, seqio.PassThroughVocabulary):
    return f"ids{vocab.vocab_size}"
  from fot_jax.data.hf_vocab import HFVocabulary
  if isinstance(vocab, HFVocabulary):
    return "hf_" + hashlib.sha1(vocab.tokenizer.to_str().encode()).hexdigest()[:8]
  raise ValueError(f"unsupported vocabulary type {type(vocab).__name__}")


def _corpus_tag(corpus: str) -> str:
  kind, sep, pattern = corpus.partition(":")
  if sep and kind in FILE_KINDS:
    return f"{kind}_{hashlib.sha1(pattern.encode()).hexdigest()[:10]}"
  return corpus


def _file_dataset(kind: str, pattern: str, split: str, shard: int = 0, num_shards: int = 1):
  """{'text', 'position'} of one shard of a file corpus split (corpus_files.sharded_documents) as a tf.data set."""
  import tensorflow as tf
  corpus_files.files(kind, pattern, split)  # fail here, not inside TF's generator wrapper
  return tf.data.Dataset.from_generator(
      lambda: ({"text": t, POSITION: p} for p, t in corpus_files.sharded_documents(kind, pattern, split, shard,
                                                                                   num_shards)),
      output_signature={"text": tf.TensorSpec([], tf.string), POSITION: tf.TensorSpec([], tf.int64)})


def _file_source(kind: str, pattern: str):
  """A seqio source over the files; its `sharded_dataset(split, shard, num_shards)` reads one shard's files."""
  seqio = _seqio()

  def dataset_fn(split, shuffle_files, seed=None):
    del shuffle_files, seed  # files are read in sorted order; the batcher shuffles documents
    return _file_dataset(kind, pattern, split)
  source = seqio.FunctionDataSource(dataset_fn, splits=("train", "validation"))
  source.sharded_dataset = functools.partial(_file_dataset, kind, pattern)
  return source


def text_source(corpus: str, data_dir: str | None = None):
  """(seqio source, text key) for a corpus name: stdlib, shakespeare, pg19, c4, jsonl:<glob>, arrayrecord:<glob>."""
  seqio = _seqio()
  data_dir = data_dir or corpora.default_data_dir()
  if corpus in corpora.OFFLINE_CORPORA:
    corpora.builder_classes()  # registers the TFDS builders
    return seqio.TfdsDataSource(corpora.tfds_name(corpus), tfds_data_dir=corpora.tfds_dir(data_dir)), "text"
  if corpus in TFDS_TEXT:
    name, key = TFDS_TEXT[corpus]
    return seqio.TfdsDataSource(name, tfds_data_dir=corpora.tfds_dir(data_dir)), key
  kind, sep, pattern = corpus.partition(":")
  if sep and kind in FILE_KINDS:
    return _file_source(kind, pattern), "text"
  raise ValueError(f"unknown corpus {corpus!r}: use one of {list(corpora.OFFLINE_CORPORA) + list(TFDS_TEXT)} "
                   f"or '<kind>:<glob>' with kind one of {list(FILE_KINDS)}")


def check_tfds_prepared(corpus: str, data_dir: str | None = None) -> None:
  """Clear error when a user-prepared TFDS corpus (pg19, c4) is not in the data dir (we never download)."""
  name, _ = TFDS_TEXT[corpus]
  path = os.path.join(corpora.tfds_dir(data_dir), *name.replace(":", "/").split("/"))
  if not os.path.isdir(path):
    raise FileNotFoundError(f"TFDS dataset {name!r} for corpus {corpus!r} is not prepared at {path!r}; build it "
                            f"with tfds (data_dir={corpora.tfds_dir(data_dir)!r}) first: fot_jax never downloads")


def _rekey_text(ds, key: str):
  """{key: text} -> {'targets': text}, keeping the source position when the reader tagged one."""
  return ds.map(lambda ex: {"targets": ex[key], **({POSITION: ex[POSITION]} if POSITION in ex else {})})


def _filter_min_length(ds, min_length: int):
  import tensorflow as tf
  return ds.filter(lambda ex: tf.size(ex["targets"]) >= min_length)


def is_registered(name: str) -> bool:
  """Whether seqio has a task of this name."""
  return name in _seqio().TaskRegistry.names()


def register_text_task(corpus: str, vocab, data_dir: str | None = None, min_length: int = 0) -> str:
  """Registers (once) the whole-document task of corpus tokenized with vocab; returns its name."""
  seqio = _seqio()
  name = f"fot.{_corpus_tag(corpus)}.{vocab_tag(vocab)}.min{int(min_length)}"
  if name in seqio.TaskRegistry.names():
    return name
  source, key = text_source(corpus, data_dir)
  seqio.TaskRegistry.add(
      name, source=source,
      preprocessors=[functools.partial(_rekey_text, key=key),
                     seqio.preprocessors.tokenize,
                     functools.partial(_filter_min_length, min_length=int(min_length))],
      output_features={"targets": seqio.Feature(vocab, add_eos=False)})
  return name


# --- synthetic tasks (the documents of synthetic.dict_lookup_documents / synthetic.passkey_document) ------------
def register_dict_lookup_task(num_docs: int = 10_000, doc_len: int = 512, seed: int = 0) -> str:
  """Dictionary lookup (docs/BEHAVIOUR.md section 5) as a seqio task with 'targets' and 'loss_weights' (1 on v1..v4)."""
  import tensorflow as tf
  seqio = _seqio()
  name = f"fot.dict_lookup.n{num_docs}.len{doc_len}.s{seed}"
  if name in seqio.TaskRegistry.names():
    return name

  def dataset_fn(split, shuffle_files, seed_=None):
    del shuffle_files, seed_
    docs = synthetic.dict_lookup_documents(num_docs, split, seed, doc_len)
    return tf.data.Dataset.from_generator(
        lambda: (docs[i] for i in range(len(docs))),
        output_signature={"targets": tf.TensorSpec([doc_len], tf.int32),
                          "loss_weights": tf.TensorSpec([doc_len], tf.float32)})

  ids = seqio.PassThroughVocabulary(synthetic.DICT_VOCAB_SIZE, eos_id=2)
  seqio.TaskRegistry.add(
      name, source=seqio.FunctionDataSource(dataset_fn, splits=tuple(SYNTHETIC_SPLIT_SEEDS)),
      preprocessors=[],
      output_features={"targets": seqio.Feature(ids, add_eos=False),
                       "loss_weights": seqio.Feature(ids, add_eos=False, dtype=tf.float32)})
  return name


def register_passkey_task(vocab, length: int, num_docs: int = 1000, seed: int = 0) -> str:
  """Passkey prompts of <= `length` tokens (answer excluded) as a seqio task with answer-only loss weights."""
  import tensorflow as tf
  seqio = _seqio()
  name = f"fot.passkey.{vocab_tag(vocab)}.len{length}.n{num_docs}.s{seed}"
  if name in seqio.TaskRegistry.names():
    return name
  measure = lambda text: len(vocab.encode(text))  # noqa: E731

  def dataset_fn(split, shuffle_files, seed_=None):
    del shuffle_files, seed_
    base = split_seed(seed, split)
    examples = (synthetic.passkey_example(base * num_docs + i, length, measure=measure) for i in range(num_docs))
    gen = (synthetic.passkey_document(vocab.encode, ex.prompt, ex.answer) for ex in examples)
    return tf.data.Dataset.from_generator(
        lambda: gen, output_signature={"targets": tf.TensorSpec([None], tf.int32),
                                       "loss_weights": tf.TensorSpec([None], tf.float32)})

  seqio.TaskRegistry.add(
      name, source=seqio.FunctionDataSource(dataset_fn, splits=tuple(SYNTHETIC_SPLIT_SEEDS)), preprocessors=[],
      output_features={"targets": seqio.Feature(vocab, add_eos=False),
                       "loss_weights": seqio.Feature(vocab, add_eos=False, dtype=tf.float32)})
  return name


# --- mixtures --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MixtureComponent:
  corpus: str
  rate: float
  min_length: int = 0  # tokens; shorter documents of this subset are dropped


def subset_components(subsets: Sequence[Subset], paths: dict[str, str], mixture: str
                      ) -> tuple[MixtureComponent, ...]:
  """MixtureComponents of the subsets over the user's files; errors name the config field of a missing path."""
  unknown = sorted(set(paths) - {s.name for s in subsets})
  if unknown:
    raise ValueError(f"{SUBSET_PATHS_FIELD}.{unknown[0]}: not a subset of mixture:{mixture} (subsets: "
                     f"{[s.name for s in subsets]})")
  comps = []
  for s in subsets:
    pattern = paths.get(s.name, "")
    if not pattern:
      raise ValueError(f"{SUBSET_PATHS_FIELD}.{s.name}: expected a path or glob of the {s.name!r} files of "
                       f"mixture:{mixture} ({s.kind} format), found none")
    comps.append(MixtureComponent(f"{s.kind}:{pattern}", s.rate, s.min_length))
  return tuple(comps)


# What the offline machine can run: stdlib code plus Gutenberg books.
OFFLINE_MIXTURE = (MixtureComponent("stdlib", 0.75, 256), MixtureComponent("shakespeare", 0.25, 256))


def register_mixture(name: str, components: Sequence[MixtureComponent], vocab,
                     data_dir: str | None = None) -> tuple[str, list[str]]:
  """A seqio.Mixture of the components' tasks at their rates; returns (mixture name, task names)."""
  seqio = _seqio()
  if not components:
    raise ValueError(f"mixture {name!r} has no components")
  for c in components:
    if c.rate <= 0:
      raise ValueError(f"mixture {name!r}: component {c.corpus!r} has rate {c.rate}; rates must be > 0")
  tasks = [register_text_task(c.corpus, vocab, data_dir, c.min_length) for c in components]
  full = f"fot.mix.{name}.{vocab_tag(vocab)}"
  if full not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(full, [(t, c.rate) for t, c in zip(tasks, components)])
  return full, tasks


def task_vocab_tag(task_name: str) -> str:
  """vocab_tag of the vocabulary a registered task tokenizes 'targets' with (recorded in its token cache)."""
  return vocab_tag(_seqio().get_mixture_or_task(task_name).output_features["targets"].vocabulary)


def task_documents(task_name: str, split: str, shard: int = 0, num_shards: int = 1
                   ) -> Iterator[dict[str, np.ndarray]]:
  """Whole tokenized documents of one shard of a task split in source order (sequence_length=None, no
  shuffle), each carrying its source 'position': a file corpus's shard i of N reads files i, i+N, ...
  (corpus_files.sharded_documents), any other task's holds source examples i, i+N, ..."""
  import tensorflow as tf
  seqio = _seqio()
  task = seqio.get_mixture_or_task(task_name)
  sharded = getattr(task.source, "sharded_dataset", None)
  if sharded is not None:  # a file corpus: the shard reads its own files and tags file-based positions
    ds = sharded(split, shard, num_shards)
  else:
    ds = task.source.get_dataset(split=split, shuffle=False).enumerate()
    if num_shards > 1:
      ds = ds.shard(num_shards, shard)
    ds = ds.map(lambda i, ex: {**ex, POSITION: tf.cast(i, tf.int64)})
  ds = task.preprocess_postcache(task.preprocess_precache(ds), sequence_length=None)
  try:
    for ex in ds.as_numpy_iterator():
      if POSITION not in ex and num_shards > 1:
        raise ValueError(f"task {task_name!r} drops the '{POSITION}' key in its preprocessors, so its cache "
                         f"cannot be built in {num_shards} shards; build it with one")
      yield {k: v for k, v in ex.items() if k in ("targets", "loss_weights", POSITION)}
  except tf.errors.OpError as e:  # a reader error raised inside TF's generator: surface the original message
    found = re.search(r"CorpusError: (.*)", e.message)
    if found:
      raise corpus_files.CorpusError(found.group(1)) from None
    raise


def describe(name: str) -> dict[str, Any]:
  seqio = _seqio()
  t = seqio.get_mixture_or_task(name)
  return {"name": name, "splits": list(getattr(t, "splits", []))}
