"""Entry points the trainer calls: build the vocabulary and a batcher for a task/mixture name and split.

Names: an offline corpus ('stdlib', 'shakespeare'), a user-prepared TFDS corpus ('pg19', 'c4'),
'jsonl:<glob>' / 'arrayrecord:<glob>', 'dict_lookup' or 'dict_lookup:<doc_len>', 'mixture:offline', or any
registered seqio task name; derived sources (fot_jax.data.derived): 'passkey:<max_tokens>' or
'passkey:<min>-<max>' (passkey prompts),
'landmark:<min>-<max>' / 'landmark_answers:<min>-<max>' (the authors' passkey prompts with that many filler
characters, training seeds disjoint from evaluation seeds), 'random:<num_symbols>' (uniform random tokens),
'repeat:<source>:<period>x<repeats>' or 'repeat:<source>:<min>-<max>x<repeats>' (segments of a source repeated),
and blends 'a@0.5+b@0.5' (rates are shares of tokens); 'instruct:<glob>' (instruction/chat JSONL, loss on the
answers only: fot_jax.data.instruct). File corpora: 'jsonl:', 'redpajama:' and 'stack:<glob>'
(fot_jax.data.corpus_files); 'mixture:longllama' takes one such glob per subset (`subset_paths`);
'cache:<dir>' reads a token cache built beforehand (fot_jax.data.cache_build); 'stream:<kind>:<glob>' streams a
file corpus without a cache (fot_jax.data.streaming; make_batcher only).
"""

from __future__ import annotations

import functools
from typing import Mapping

from fot_jax.data import corpora, corpus_files, derived, instruct, sources, synthetic, tasks
from fot_jax.data.batcher import BatcherConfig, DocumentBatcher
from fot_jax.data.streaming import StreamingBatcher
from fot_jax.data.subsets import SUBSET_MIXTURES
from fot_jax.data.vocab import VocabConfig, build_vocabulary, check_model_vocab, special_ids  # noqa: F401

MIXTURES = {"offline": tasks.OFFLINE_MIXTURE, **SUBSET_MIXTURES}
DICT_LOOKUP_DOCS = {"train": 100_000, "validation": 1000, "test": 1000}
PASSKEY_DOCS = {"train": 50_000, "validation": 500, "test": 500}
LANDMARK_DOCS = {"train": 20_000, "validation": 500, "test": 500}
RANDOM_DOCS, RANDOM_DOC_LEN = {"train": 2000, "validation": 200, "test": 200}, 4096


def documents(name: str, split: str, vocab, data_dir: str | None = None, min_length: int = 0, seed: int = 0,
              subset_paths: Mapping[str, str] | None = None, cache_processes: int = 1):
  """The indexable document source behind a name (see module doc); a missing token cache is built by
  `cache_processes` local processes."""
  data_dir = data_dir or corpora.default_data_dir()
  if "+" in name or "@" in name:
    parts = derived.parse_blend(name)
    srcs = [documents(n, split, vocab, data_dir, min_length, seed, subset_paths, cache_processes) for n, _ in parts]
    return sources.MixtureDocuments(srcs, derived.document_rates([r for _, r in parts], srcs), seed=seed)
  if name.startswith("passkey:"):
    lo, hi = derived.parse_passkey(name)
    return derived.PasskeyDocuments(vocab.encode, PASSKEY_DOCS[split], lo, hi,
                                    seed=tasks.split_seed(seed, split))
  if name.startswith(("landmark:", "landmark_answers:")):
    lo, hi, answer_only = derived.parse_landmark(name)
    return derived.LandmarkPasskeyDocuments(vocab.encode, LANDMARK_DOCS[split], lo, hi,
                                            seed=tasks.split_seed(seed, split), answer_only=answer_only)
  if name.startswith("instruct:"):
    examples = instruct.read_examples(instruct.parse_name(name), split)
    return instruct.InstructDocuments(examples, vocab.encode, special_ids(vocab)[1])
  if name.startswith("random:"):
    return derived.RandomTokenDocuments(RANDOM_DOCS[split], RANDOM_DOC_LEN, derived.parse_random(name),
                                        seed=tasks.split_seed(seed, split))
  if name.startswith("repeat:"):
    base, period, max_period, repeats = derived.parse_repeat(name)
    return derived.RepeatedSegments(documents(base, split, vocab, data_dir, min_length, seed, subset_paths,
                                              cache_processes),
                                    period, repeats,
                                    seed=tasks.split_seed(seed, split), max_period=max_period)
  if is_dict_lookup(name):
    return synthetic.DictLookupDocuments(DICT_LOOKUP_DOCS[split], seed=tasks.split_seed(seed, split),
                                         doc_len=parse_dict_lookup(name))
  if name.startswith("cache:"):
    return _nonempty(sources.CachedDocuments(name[len("cache:"):], expected_vocab=tasks.vocab_tag(vocab)), name,
                     split, 0)
  if name.startswith("mixture:"):
    key = name.split(":", 1)[1]
    comps = mixture_components(key, subset_paths)
    _, task_names = tasks.register_mixture(key, comps, vocab, data_dir)
    srcs = []
    for sub, c, t in zip(MIXTURES[key], comps, task_names):
      _prepare(c.corpus, split, data_dir, getattr(sub, "name", None))
      register = functools.partial(tasks.register_text_task, c.corpus, vocab, data_dir, c.min_length)
      srcs.append(_nonempty(sources.task_documents_cached(t, split, data_dir, cache_processes, register), t, split,
                            c.min_length, c.corpus))
    return sources.MixtureDocuments(srcs, [c.rate for c in comps], seed=seed)
  task_name = _text_task(name, split, vocab, data_dir, min_length)
  register = None if task_name == name else functools.partial(tasks.register_text_task, name, vocab, data_dir,
                                                              min_length)
  return _nonempty(sources.task_documents_cached(task_name, split, data_dir, cache_processes, register), task_name,
                   split, min_length, name)


def _prepare(corpus: str, split: str, data_dir: str, subset: str | None = None) -> None:
  """Builds an offline corpus, or checks that a user-prepared TFDS corpus or a file corpus's files exist."""
  if corpus in corpora.OFFLINE_CORPORA:
    corpora.prepare_corpus(corpus, data_dir)
  elif corpus in tasks.TFDS_TEXT:
    tasks.check_tfds_prepared(corpus, data_dir)
  elif corpus_files.parse(corpus):
    try:
      corpus_files.files(*corpus_files.parse(corpus), split)
    except FileNotFoundError as e:
      if subset is None:
        raise
      raise FileNotFoundError(f"{tasks.SUBSET_PATHS_FIELD}.{subset}: {e}") from None


def _text_task(name: str, split: str, vocab, data_dir: str, min_length: int) -> str:
  """The seqio task behind a corpus or task name (registered for this vocabulary and minimum length)."""
  if name.startswith("fot.") or "." in name and ":" not in name:
    return name
  _prepare(name, split, data_dir)
  return tasks.register_text_task(name, vocab, data_dir, min_length)


def mixture_components(key: str, subset_paths: Mapping[str, str] | None = None):
  """The MixtureComponents of a named mixture; subset mixtures (longllama) take their files from subset_paths."""
  if key not in MIXTURES:
    raise ValueError(f"unknown mixture {key!r}; known: {sorted(MIXTURES)}")
  comps = MIXTURES[key]
  if comps and isinstance(comps[0], tasks.Subset):
    return tasks.subset_components(comps, dict(subset_paths or {}), key)
  return comps


def parse_subset_paths(text: str) -> dict[str, str]:
  """'arxiv=/data/rp/arxiv/*.jsonl,python=gs://b/stack/*.parquet' -> {subset: glob}."""
  out = {}
  for item in filter(None, text.split(",")):
    name, sep, pattern = item.partition("=")
    if not sep or not name or not pattern:
      raise ValueError(f"--subset_paths: expected 'name=<glob>' items separated by commas, found {item!r}")
    out[name.strip()] = pattern.strip()
  return out


def cache_task_names(name: str, vocab, data_dir: str, min_length: int = 0,
                     subset_paths: Mapping[str, str] | None = None, split: str = "train") -> list[str]:
  """The seqio task(s) whose token caches a name reads: one per subset for a mixture, else one."""
  if name.startswith("mixture:"):
    key = name.split(":", 1)[1]
    comps = mixture_components(key, subset_paths)
    for sub, c in zip(MIXTURES[key], comps):
      _prepare(c.corpus, split, data_dir, getattr(sub, "name", None))
    return tasks.register_mixture(key, comps, vocab, data_dir)[1]
  return [_text_task(name, split, vocab, data_dir, min_length)]


def is_dict_lookup(name: str) -> bool:
  return name == "dict_lookup" or name.startswith("dict_lookup:")


def parse_dict_lookup(name: str) -> int:
  """'dict_lookup' -> 512, 'dict_lookup:<doc_len>' -> doc_len (short documents fit one local context: the
  lookup is then learned locally, before FoT puts the definitions out of local reach)."""
  if name == "dict_lookup":
    return 512
  body = name[len("dict_lookup:"):]
  if not body.isdigit():
    raise ValueError(f"{name!r}: expected 'dict_lookup' or 'dict_lookup:<doc_len>', e.g. 'dict_lookup:128'")
  return int(body)


def _nonempty(docs, task_name, split, min_length, corpus: str = ""):
  if len(docs) == 0:
    source = f" ({corpus})" if corpus and corpus != task_name else ""
    raise ValueError(f"task {task_name!r}{source} split {split!r} has no documents"
                     + (f" of at least min_length={min_length} tokens" if min_length else "")
                     + " (empty corpus or every document below the minimum length)")
  return docs


def make_batcher(name: str, split: str, vocab, batch_size: int, seq_len: int, k: int = 1, micro_batches: int = 1,
                 seed: int = 0, process_index: int = 0, process_count: int = 1, data_dir: str | None = None,
                 num_epochs: int | None = None, min_length: int = 0, shuffle: bool = True,
                 model_vocab_size: int | None = None, align_documents: bool = False,
                 subset_paths: Mapping[str, str] | None = None, cache_build_processes: int = 1,
                 stream_workers: int = 0) -> DocumentBatcher | StreamingBatcher:
  """A DocumentBatcher over `name`/`split` (a StreamingBatcher for 'stream:<kind>:<glob>', tokenizing ahead in
  `stream_workers` threads) yielding this process's rows of each global batch; a missing token cache is built
  by `cache_build_processes` local processes."""
  if model_vocab_size is not None and not is_dict_lookup(name):  # dict_lookup has its own ids (checked below)
    check_model_vocab(vocab, model_vocab_size)
  if name.startswith("stream:"):
    parsed = corpus_files.parse(name[len("stream:"):])
    if parsed is None:
      raise ValueError(f"{name!r}: expected 'stream:<kind>:<glob>' with kind one of {list(corpus_files.KINDS)}")
    bos, eos = special_ids(vocab)
    cfg = BatcherConfig(batch_size=batch_size, seq_len=seq_len, k=k, micro_batches=micro_batches, seed=seed,
                        shuffle=shuffle, bos_id=bos, eos_id=eos, align_documents=align_documents)
    return StreamingBatcher(*parsed, split, vocab.encode, cfg, process_index, process_count, min_length,
                            workers=stream_workers)
  docs = documents(name, split, vocab, data_dir, min_length, seed, subset_paths, cache_build_processes)
  if is_dict_lookup(name):
    bos, eos = 1, 2
    if model_vocab_size is not None and model_vocab_size < synthetic.DICT_VOCAB_SIZE:
      raise ValueError(f"vocabulary/model mismatch: dict_lookup uses {synthetic.DICT_VOCAB_SIZE} ids but "
                       f"model.vocab_size={model_vocab_size}")
  else:
    bos, eos = special_ids(vocab)
  cfg = BatcherConfig(batch_size=batch_size, seq_len=seq_len, k=k, micro_batches=micro_batches, seed=seed,
                      shuffle=shuffle, num_epochs=num_epochs, bos_id=bos, eos_id=eos,
                      align_documents=align_documents)
  return DocumentBatcher(docs, cfg, process_index=process_index, process_count=process_count)
