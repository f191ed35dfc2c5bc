"""The documents of a data-source spec (fot_jax.data.specs): one builder for every kind, so a whole source, a
blend part and a repeat's base all go through the same code."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

from fot_jax.data import corpora, corpus_files, derived, instruct, sources, synthetic, tasks
from fot_jax.data import specs as S
from fot_jax.data.subsets import SUBSET_MIXTURES
from fot_jax.data.vocab import special_ids

MIXTURES = {"offline": tasks.OFFLINE_MIXTURE, **SUBSET_MIXTURES}
DICT_LOOKUP_DOCS = {"train": 100_000, "validation": 1000, "test": 1000}
PASSKEY_DOCS = {"train": 50_000, "validation": 500, "test": 500}
LANDMARK_DOCS = {"train": 20_000, "validation": 500, "test": 500}
RANDOM_DOCS, RANDOM_DOC_LEN = {"train": 2000, "validation": 200, "test": 200}, 4096


@dataclasses.dataclass(frozen=True)
class SourceContext:
  """What a spec is built for: the split, the vocabulary, where data lives, the minimum document length of text
  corpora, the run seed, the subset files of a subset mixture (mixture:longllama), and how many local processes
  build a missing token cache."""
  split: str
  vocab: Any
  data_dir: str
  min_length: int = 0
  seed: int = 0
  subset_paths: Mapping[str, str] | None = None
  cache_processes: int = 1

  def cached(self, task_name: str, corpus: str | None, min_length: int):
    """The cached documents of a task split; `corpus` (a text corpus name) lets a fresh process register the
    task, so a missing cache can be built by several processes."""
    register = None if corpus is None else functools.partial(tasks.register_text_task, corpus, self.vocab,
                                                             self.data_dir, min_length)
    return sources.task_documents_cached(task_name, self.split, self.data_dir, self.cache_processes, register)

  @property
  def synthetic_seed(self) -> int:
    return synthetic.split_seed(self.seed, self.split)


def build_documents(spec: S.Spec, ctx: SourceContext):
  """The indexable document source of a spec (each spec's docstring says what its documents are)."""
  if isinstance(spec, S.BlendSpec):
    srcs = [build_documents(p.source, ctx) for p in spec.parts]
    return sources.MixtureDocuments(srcs, derived.document_rates([p.share for p in spec.parts], srcs), seed=ctx.seed)
  if isinstance(spec, S.PasskeySpec):
    return derived.PasskeyDocuments(ctx.vocab.encode, PASSKEY_DOCS[ctx.split], spec.min_len, spec.max_len,
                                    seed=ctx.synthetic_seed)
  if isinstance(spec, S.LandmarkSpec):
    return derived.LandmarkPasskeyDocuments(ctx.vocab.encode, LANDMARK_DOCS[ctx.split], spec.min_garbage,
                                            spec.max_garbage, seed=ctx.synthetic_seed, answer_only=spec.answer_only)
  if isinstance(spec, S.InstructSpec):
    examples = instruct.read_examples(spec.pattern, ctx.split)
    return instruct.InstructDocuments(examples, ctx.vocab.encode, special_ids(ctx.vocab)[1])
  if isinstance(spec, S.RandomSpec):
    return derived.RandomTokenDocuments(RANDOM_DOCS[ctx.split], RANDOM_DOC_LEN, spec.num_symbols,
                                        seed=ctx.synthetic_seed)
  if isinstance(spec, S.RepeatSpec):
    return derived.RepeatedSegments(build_documents(spec.base, ctx), spec.period, spec.repeats,
                                    seed=ctx.synthetic_seed, max_period=spec.max_period)
  if isinstance(spec, S.DictLookupSpec):
    return synthetic.dict_lookup_documents(DICT_LOOKUP_DOCS[ctx.split], ctx.split, ctx.seed, spec.doc_len)
  if isinstance(spec, S.CacheSpec):
    docs = sources.CachedDocuments(spec.pattern, expected_vocab=tasks.vocab_tag(ctx.vocab))
    return _nonempty(docs, str(spec), ctx.split, 0)
  if isinstance(spec, S.MixtureSpec):
    comps, task_names = mixture_tasks(spec.name, ctx)
    srcs = [_nonempty(ctx.cached(t, c.corpus, c.min_length), t, ctx.split, c.min_length, c.corpus)
            for c, t in zip(comps, task_names)]
    return sources.MixtureDocuments(srcs, [c.rate for c in comps], seed=ctx.seed)
  if isinstance(spec, S.StreamSpec):
    raise S.SpecError(f"{spec}: a streamed corpus has no indexable documents; it can only be the whole data.task "
                      f"(make_batcher)")
  task_name = task_for(spec, ctx)
  corpus = str(spec) if isinstance(spec, S.TEXT_CORPUS_SPECS) else None
  return _nonempty(ctx.cached(task_name, corpus, ctx.min_length), task_name, ctx.split, ctx.min_length, corpus or "")


def task_for(spec: S.Spec, ctx: SourceContext) -> str:
  """The seqio task of a text corpus (registered for this vocabulary and minimum length) or a TaskSpec."""
  if isinstance(spec, S.TaskSpec):
    if not tasks.is_registered(spec.name):
      raise S.SpecError(f"{spec}: no seqio task {spec.name!r} is registered")
    return spec.name
  if not isinstance(spec, S.TEXT_CORPUS_SPECS):
    raise S.SpecError(f"{spec}: not a corpus or seqio task (only those have token caches)")
  prepare(str(spec), ctx.split, ctx.data_dir)
  return tasks.register_text_task(str(spec), ctx.vocab, ctx.data_dir, ctx.min_length)


def mixture_tasks(key: str, ctx: SourceContext):
  """(components, task names) of a named mixture, its corpora prepared or checked for this split."""
  comps = mixture_components(key, ctx.subset_paths)
  for sub, c in zip(MIXTURES[key], comps):
    prepare(c.corpus, ctx.split, ctx.data_dir, getattr(sub, "name", None))
  return comps, tasks.register_mixture(key, comps, ctx.vocab, ctx.data_dir)[1]


def mixture_components(key: str, subset_paths: Mapping[str, str] | None = None):
  """The MixtureComponents of a named mixture; subset mixtures (longllama) take their files from subset_paths."""
  if key not in MIXTURES:
    raise ValueError(f"unknown mixture {key!r}; known: {sorted(MIXTURES)}")
  comps = MIXTURES[key]
  if comps and isinstance(comps[0], tasks.Subset):
    return tasks.subset_components(comps, dict(subset_paths or {}), key)
  return comps


def prepare(corpus: str, split: str, data_dir: str, subset: str | None = None) -> None:
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


def _nonempty(docs, task_name, split, min_length, corpus: str = ""):
  if len(docs) == 0:
    source = f" ({corpus})" if corpus and corpus != task_name else ""
    raise ValueError(f"task {task_name!r}{source} split {split!r} has no documents"
                     + (f" of at least min_length={min_length} tokens" if min_length else "")
                     + " (empty corpus or every document below the minimum length)")
  return docs
