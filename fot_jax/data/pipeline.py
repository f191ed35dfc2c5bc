"""Entry points the trainer calls: build the vocabulary and a batcher for a source name and split.

A source name (docs/DATA.md, "Source names") parses into a typed spec (fot_jax.data.source_names.parse_source) and the
spec builds the documents (fot_jax.data.build.build_documents): an offline corpus ('stdlib', 'shakespeare'), a
user-prepared TFDS corpus ('pg19', 'c4'), file corpora 'jsonl:', 'arrayrecord:', 'redpajama:' and 'stack:<glob>'
(fot_jax.data.corpus_files), 'dict_lookup' or 'dict_lookup:<doc_len>', 'mixture:offline' / 'mixture:longllama'
(one glob per subset in `subset_paths`), 'task:<name>' or a registered seqio task name, derived sources
(fot_jax.data.derived: 'passkey:', 'landmark:', 'landmark_answers:', 'random:', 'repeat:'), blends
'a@0.5+b@0.5' (rates are shares of tokens), 'instruct:<glob>' (fot_jax.data.instruct), 'cache:<dir>' (a token
cache built beforehand) and 'stream:<kind>:<glob>' (a file corpus streamed without a cache; make_batcher only).
"""

from __future__ import annotations

from typing import Mapping

from fot_jax.data import corpora, source_names, specs, synthetic
from fot_jax.data.batcher import BatcherConfig, DocumentBatcher
from fot_jax.data.build import LANDMARK_DOCS, MIXTURES, PASSKEY_DOCS  # noqa: F401 (re-exported)
from fot_jax.data.build import SourceContext, build_documents, mixture_tasks, task_for
from fot_jax.data.streaming import StreamingBatcher
from fot_jax.data.vocab import VocabConfig, build_vocabulary, check_model_vocab, special_ids  # noqa: F401


def _spec(source: str | specs.Spec) -> specs.Spec:
  return source_names.parse_source(source) if isinstance(source, str) else source


def _context(split: str, vocab, data_dir: str | None, min_length: int = 0, seed: int = 0,
             subset_paths: Mapping[str, str] | None = None, cache_processes: int = 1) -> SourceContext:
  return SourceContext(split, vocab, data_dir or corpora.default_data_dir(), min_length, seed, subset_paths,
                       cache_processes)


def documents(name: str | specs.Spec, split: str, vocab, data_dir: str | None = None, min_length: int = 0,
              seed: int = 0, subset_paths: Mapping[str, str] | None = None, cache_processes: int = 1):
  """The indexable document source behind a source name or spec (see module doc); a missing token cache is built
  by `cache_processes` local processes."""
  return build_documents(_spec(name), _context(split, vocab, data_dir, min_length, seed, subset_paths,
                                               cache_processes))


def parse_subset_paths(text: str) -> dict[str, str]:
  """'arxiv=/data/rp/arxiv/*.jsonl,python=gs://b/stack/*.parquet' -> {subset: glob}."""
  out = {}
  for item in filter(None, text.split(",")):
    name, sep, pattern = item.partition("=")
    if not sep or not name or not pattern:
      raise ValueError(f"--subset_paths: expected 'name=<glob>' items separated by commas, found {item!r}")
    out[name.strip()] = pattern.strip()
  return out


def cache_task_names(name: str | specs.Spec, vocab, data_dir: str, min_length: int = 0,
                     subset_paths: Mapping[str, str] | None = None, split: str = "train") -> list[str]:
  """The seqio task(s) whose token caches a source reads: one per subset for a mixture, else one."""
  spec, ctx = _spec(name), _context(split, vocab, data_dir, min_length, subset_paths=subset_paths)
  if isinstance(spec, specs.MixtureSpec):
    return mixture_tasks(spec.name, ctx)[1]
  return [task_for(spec, ctx)]


def make_batcher(name: str | specs.Spec, split: str, vocab, batch_size: int, seq_len: int, k: int = 1,
                 micro_batches: int = 1, seed: int = 0, process_index: int = 0, process_count: int = 1,
                 data_dir: str | None = None, num_epochs: int | None = None, min_length: int = 0,
                 shuffle: bool = True, model_vocab_size: int | None = None, align_documents: bool = False,
                 subset_paths: Mapping[str, str] | None = None, cache_build_processes: int = 1,
                 stream_workers: int = 0) -> DocumentBatcher | StreamingBatcher:
  """A DocumentBatcher over a source's split (a StreamingBatcher for 'stream:<kind>:<glob>', tokenizing ahead in
  `stream_workers` threads) yielding this process's rows of each global batch; a missing token cache is built
  by `cache_build_processes` local processes."""
  spec = _spec(name)
  dict_ids = isinstance(spec, specs.DictLookupSpec)  # its own ids, checked below
  if model_vocab_size is not None and not dict_ids:
    check_model_vocab(vocab, model_vocab_size)
  cfg = dict(batch_size=batch_size, seq_len=seq_len, k=k, micro_batches=micro_batches, seed=seed, shuffle=shuffle,
             align_documents=align_documents)
  if isinstance(spec, specs.StreamSpec):
    bos, eos = special_ids(vocab)
    return StreamingBatcher(spec.corpus.KIND, spec.corpus.pattern, split, vocab.encode,
                            BatcherConfig(**cfg, bos_id=bos, eos_id=eos), process_index, process_count, min_length,
                            workers=stream_workers)
  if dict_ids:
    bos, eos = 1, 2
    if model_vocab_size is not None and model_vocab_size < synthetic.DICT_VOCAB_SIZE:
      raise ValueError(f"vocabulary/model mismatch: dict_lookup uses {synthetic.DICT_VOCAB_SIZE} ids but "
                       f"model.vocab_size={model_vocab_size}")
  else:
    bos, eos = special_ids(vocab)
  docs = build_documents(spec, _context(split, vocab, data_dir, min_length, seed, subset_paths,
                                        cache_build_processes))
  return DocumentBatcher(docs, BatcherConfig(**cfg, num_epochs=num_epochs, bos_id=bos, eos_id=eos),
                         process_index=process_index, process_count=process_count)
