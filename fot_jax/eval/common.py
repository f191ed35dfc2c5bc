"""Shared pieces of the evaluation tasks: model/memory flags, model and vocabulary loading, runners; the
scoring (fot_jax.eval.scoring) and output (fot_jax.eval.outputs) helpers are re-exported here.

Every task is `main(argv) -> int` built from the same parts, so flags mean the same thing everywhere:
  --checkpoint/--step         what to evaluate (orbax workdir or Hugging Face folder)
  --window/--last_context_length/--mem_layers/--mem_dtype   inference overrides (docs/BEHAVIOUR.md section 3)
  --topk/--approx_topk        top-k memory instead of dense memory (docs/BEHAVIOUR.md section 3, kNN variant)
  --ivf_nlist/--ivf_nprobe    with --topk: find the top-k through an IVF index of the memory keys
  --ivf_balance               with --ivf_nlist: cap each list at this multiple of the mean list length
  --mem_shards                memory sharded over this many devices (a 1-D mesh with axis "memory")
  --out/--figure              the JSON result and the PNG figure
Evaluation code talks to a model only through a *runner* (an object with `encode(tokens) -> logits`, `reset()`
and `memory_size`, i.e. fot_jax.model.inference.MemoryInference), so tests can plug in oracle models.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
from typing import Any, Callable

import numpy as np

from fot_jax.eval.outputs import (  # noqa: F401 - the tasks' output API
    Progress, figure_path, finish_axes, publish, pyplot, save_figure, write_json)
from fot_jax.eval.scoring import (  # noqa: F401 - the tasks' scoring API
    Runner, answer_match, batched_answer_hits, end_scores, stream_feed, stream_scores)
from fot_jax.eval.flag_values import (  # noqa: F401 - the tasks' flag checks
    EvalError, float_list, int_list, memory_index, memory_mesh, memory_options, positive)


# ---- flags ----------------------------------------------------------------------------------------------------
def make_parser(task: str, description: str, figure: bool = True) -> argparse.ArgumentParser:
  """A parser with the flags every task shares."""
  p = argparse.ArgumentParser(prog=f"python -m fot_jax.evaluate {task}", description=description)
  p.add_argument("--checkpoint", required=True, help="orbax workdir or Hugging Face folder")
  p.add_argument("--step", type=int, default=None, help="orbax checkpoint step (default: latest)")
  p.add_argument("--window", type=int, default=None, help="W: overrides the checkpoint's max_position_embeddings")
  p.add_argument("--last_context_length", type=int, default=None, help="LCL: overrides the checkpoint's value")
  p.add_argument("--mem_layers", default=None,
                 help="comma-separated memory layers, e.g. 2 or 6,12,18; '' disables memory (baseline)")
  p.add_argument("--mem_dtype", default=None, help="float32|bfloat16|float16 (default: the checkpoint's)")
  p.add_argument("--no_memory", action="store_true",
                 help="memory off: memory layers keep nothing and read only their local window (unlike "
                      "--mem_layers='', they stay memory layers, e.g. without positions under mem_positionals=none)")
  p.add_argument("--topk", type=int, default=None, help="top-k memory: each query keeps its k best memory keys")
  p.add_argument("--approx_topk", action="store_true", help="with --topk: approximate top-k (lax.approx_max_k)")
  p.add_argument("--ivf_nlist", type=int, default=None,
                 help="with --topk: an IVF index of this many k-means lists per kv head (and memory shard)")
  p.add_argument("--ivf_nprobe", type=int, default=None, help="with --ivf_nlist: lists each query probes")
  p.add_argument("--ivf_balance", type=float, default=None,
                 help="with --ivf_nlist: cap each list at this multiple (>= 1) of the mean list length")
  p.add_argument("--mem_shards", type=int, default=1,
                 help="shard the memory over this many devices (must divide the device count); 1: one device")
  p.add_argument("--seed", type=int, default=0, help="seed of the evaluation data")
  p.add_argument("--out", required=True, help="JSON result path (refused if it exists, unless --overwrite)")
  if figure:
    p.add_argument("--figure", default=None, help="PNG figure path (default: --out with .png)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing --out (and figure)")
  p.add_argument("--quiet", action="store_true", help="no progress lines")
  return p


def add_vocab_flags(p: argparse.ArgumentParser) -> None:
  p.add_argument("--vocab", default=None,
                 help="'byte', a SentencePiece .model path or '<corpus>_sp<size>' (default: the checkpoint's)")
  p.add_argument("--data_dir", default=None, help="fot_jax data dir (default: $FOT_JAX_DATA_DIR or ~/.cache/fot_jax)")


# ---- model, vocabulary, runners --------------------------------------------------------------------------------
@dataclasses.dataclass
class Model:
  params: Any
  config: Any  # ModelConfig after overrides
  checkpoint: str
  step: int | None
  source: str
  no_memory: bool = False  # memory layers keep nothing (--no_memory)

  @functools.cached_property
  def module(self):
    """The FoTLlama module over params and config (the evaluators' entry to the model)."""
    from fot_jax.model.modules import FoTLlama
    return FoTLlama.from_params(self.config, self.params)


def load(args) -> Model:
  """Loads --checkpoint with the inference overrides; validates W and LCL."""
  from fot_jax.eval.loading import load_model, mem_layers_flag
  for flag in ("window", "last_context_length"):
    positive(flag, getattr(args, flag))
  if args.step is not None and args.step < 0:
    raise EvalError(f"--step: expected a non-negative integer, found {args.step}")
  try:
    mem_layers = mem_layers_flag(args.mem_layers)
  except ValueError as e:
    raise EvalError(str(e)) from e
  loaded = load_model(args.checkpoint, args.step, mem_layers=mem_layers, max_position_embeddings=args.window,
                      last_context_length=args.last_context_length, mem_dtype=args.mem_dtype)
  config = loaded.config
  if config.last_context_length > config.max_position_embeddings:
    raise EvalError(f"--last_context_length={config.last_context_length} exceeds the window "
                    f"W={config.max_position_embeddings} (--window)")
  return Model(loaded.params, config, args.checkpoint, loaded.step, loaded.source,
               bool(getattr(args, "no_memory", False)))


def make_runner_factory(model: Model, options) -> Callable[[int], Runner]:
  """batch -> a fresh InferenceMemory over the model's module (compiled functions are shared between runners)."""

  def factory(batch: int = 1) -> Runner:
    runner = model.module.memory(batch, options=options)
    return WithoutMemory(runner) if model.no_memory else runner
  return factory


class WithoutMemory:
  """A MemoryInference whose memory stays empty: every flush forgets what it moved to memory (memory off)."""

  def __init__(self, runner):
    self.runner = runner

  def __getattr__(self, name):
    if name in ("encode", "generate", "generate_iter"):  # they flush inside the runner, past this wrapper
      raise EvalError(f"--no_memory: supported by the scoring evaluators (window by window), not by {name}()")
    return getattr(self.runner, name)

  def flush(self) -> None:
    self.runner.flush()
    self.runner.forget()

  def feed(self, tokens, valid=None) -> None:
    """A front that goes into memory is simply gone."""
    self.flush()


def stored_vocab_name(checkpoint: str, step: int | None = None) -> str | None:
  """The vocabulary a checkpoint was trained with: orbax config data.sentencepiece_model / data.hf_tokenizer /
  data.vocab, or an HF folder's tokenizer.model. None when unknown."""
  from fot_jax.eval.loading import checkpoint_kind
  kind = checkpoint_kind(checkpoint)
  if kind == "hf":
    path = os.path.join(checkpoint, "tokenizer.model")
    return path if os.path.isfile(path) else None
  from fot_jax.train.checkpoint import restore_config
  _, config = restore_config(checkpoint, step)
  data = (config or {}).get("data") or {}
  model_path = data.get("sentencepiece_model") or ""
  if model_path and os.path.isfile(model_path):
    return model_path
  hf_tokenizer = data.get("hf_tokenizer") or ""
  if hf_tokenizer and os.path.isfile(hf_tokenizer):
    return "hf:" + hf_tokenizer
  return data.get("vocab") or None


def load_vocab(args):
  """The seqio vocabulary named by --vocab, else the checkpoint's; an error naming --vocab if neither exists, or
  if --vocab disagrees with the vocabulary the checkpoint records (size, special ids or pieces).

  The name used is kept in args.vocab_used for vocab_record."""
  from fot_jax.data.vocab import VocabConfig, build_vocabulary
  stored = stored_vocab_name(args.checkpoint, args.step)
  name = args.vocab or stored
  if not name:
    raise EvalError(f"--vocab: the checkpoint {args.checkpoint} does not record its vocabulary; pass --vocab")
  try:
    vocab = build_vocabulary(VocabConfig(name=name, data_dir=args.data_dir))
  except FileNotFoundError as e:
    raise EvalError(f"--vocab {name!r}: {e}") from e
  if args.vocab and stored and args.vocab != stored:
    _check_same_vocab(args.vocab, vocab, stored, args)
  args.vocab_used = name
  return vocab


def vocab_identity(vocab) -> dict:
  """What must agree for token ids to mean the same: size, BOS/EOS ids and, for SentencePiece, the pieces."""
  import hashlib
  from fot_jax.data.vocab import special_ids
  bos, eos = special_ids(vocab)
  out = {"size": int(vocab.vocab_size), "bos_id": bos, "eos_id": eos}
  sp_model = getattr(vocab, "sp_model", None)
  if sp_model:
    out["sentencepiece_sha256"] = hashlib.sha256(sp_model).hexdigest()[:16]
  return out


def _check_same_vocab(flag: str, vocab, stored: str, args) -> None:
  from fot_jax.data.vocab import VocabConfig, build_vocabulary
  try:
    expected = vocab_identity(build_vocabulary(VocabConfig(name=stored, data_dir=args.data_dir)))
  except FileNotFoundError:  # the recorded vocabulary is gone: only the model's size can be checked
    return
  got = vocab_identity(vocab)
  diff = [f"{k} {got.get(k)} vs {expected.get(k)}" for k in sorted({**got, **expected}) if got.get(k) != expected.get(k)]
  if diff:
    raise EvalError(f"--vocab {flag!r} disagrees with the vocabulary the checkpoint was trained with ({stored}): "
                    f"{', '.join(diff)}; drop --vocab to use the checkpoint's")


def vocab_record(args, vocab) -> dict:
  """The vocabulary of a result JSON: its name (as given or as recorded by the checkpoint) and identity."""
  source = "--vocab" if args.vocab else "checkpoint"
  return {"name": getattr(args, "vocab_used", args.vocab), "from": source, **vocab_identity(vocab)}


def synthetic_vocab_record(size: int) -> dict:
  """The vocabulary of a result on synthetic token ids (no tokenizer involved)."""
  return {"name": f"ids:{size}", "from": "synthetic token ids", "size": size}


def model_summary(model: Model, options) -> dict:
  c = model.config
  return {"checkpoint": os.path.abspath(model.checkpoint), "step": model.step, "source": model.source,
          "mem_layers": list(c.mem_layers), "window": c.max_position_embeddings,
          "last_context_length": c.last_context_length, "mem_dtype": c.mem_dtype,
          "topk": options.topk, "approx_topk": options.approx, "ivf_nlist": options.nlist,
          "ivf_nprobe": options.nprobe, "ivf_balance": options.balance,
          "memory": "off" if model.no_memory else "on",
          "mem_shards": 1 if options.mesh is None else options.mesh.shape[options.mem_axis]}


def run_main(task: str, parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], dict],
             argv=None) -> int:
  """Parses argv and runs; a user error is one line with exit status 2 (fot_jax.cli)."""
  from fot_jax import cli, platforms
  platforms.use_cpu_without_accelerators()
  cli.add_debug_flag(parser)
  args = parser.parse_args(argv)

  def body() -> None:
    refuse_existing_outputs(args)
    run(args)
    print(f"wrote {args.out}")
  return cli.run(body, prog=f"fot_jax.evaluate {task}", debug=args.debug, also=cli.INPUT_ERRORS)


def refuse_existing_outputs(args) -> None:
  """--out (and its figure) must not exist unless --overwrite: checked before the model is loaded."""
  if getattr(args, "overwrite", False):
    return
  paths = [("--out", args.out)]
  if hasattr(args, "figure"):
    paths.append(("--figure" if args.figure else "the figure of --out", figure_path(args)))
  for flag, path in paths:
    if os.path.exists(path):
      raise EvalError(f"{flag} {path} exists; pass --overwrite to replace it")


def bos_prefix(vocab) -> list[int]:
  """[BOS] when the vocabulary has one (documents start with it in training), else []."""
  from fot_jax.data.vocab import special_ids
  bos, _ = special_ids(vocab)
  return [] if bos is None else [int(bos)]


def check_vocab_fits(vocab, config) -> None:
  if vocab.vocab_size > config.vocab_size:
    raise EvalError(f"--vocab: the vocabulary has {vocab.vocab_size} ids but the model only {config.vocab_size}")


def add_compare_flag(p: argparse.ArgumentParser) -> None:
  p.add_argument("--compare", action="append", default=[], metavar="LABEL=RESULT.json",
                 help="draw an earlier result of the same task on the same figure (repeatable)")
  p.add_argument("--label", default=None, help="legend label of this run (default: the checkpoint's name)")


def compare_results(args, task: str) -> list[tuple[str, dict]]:
  """[(label, result)] of the --compare files (each must be a result of `task`)."""
  out = []
  for item in args.compare:
    label, sep, path = item.partition("=")
    if not sep or not path:
      raise EvalError(f"--compare: expected LABEL=RESULT.json, found {item!r}")
    try:
      out.append((label, read_result(path, task)))
    except EvalError as e:
      raise EvalError(f"--compare {item!r}: {e}") from None
  return out


def read_result(path: str, task: str) -> dict:
  """An evaluation's result JSON, checked to be one of `task` (errors name the file)."""
  if not os.path.isfile(path):
    raise EvalError(f"{path}: missing")
  with open(path) as f:
    result = json.load(f)
  if result.get("task") != task:
    raise EvalError(f"{path}: a {result.get('task')!r} result, expected {task!r}")
  return result


def run_label(args) -> str:
  return args.label or os.path.basename(os.path.normpath(args.checkpoint))


def add_corpus_flags(p: argparse.ArgumentParser, split: str = "validation") -> None:
  p.add_argument("--corpus", default="stdlib",
                 help="a fot_jax.data.pipeline document source: 'stdlib', 'shakespeare', 'jsonl:<glob>', a task")
  p.add_argument("--split", default=split, help="split of --corpus (held-out by default)")


def load_documents(args, vocab, min_length: int = 0) -> list[np.ndarray]:
  """Token arrays (BOS first when the vocabulary has one) of the --corpus/--split documents with at least
  min_length tokens (BOS included), in the source's order."""
  from fot_jax.data import pipeline
  try:
    docs = pipeline.documents(args.corpus, args.split, vocab, args.data_dir)
  except KeyError as e:
    raise EvalError(f"--split {args.split!r}: not a split of --corpus {args.corpus!r} ({e})") from e
  bos = np.asarray(bos_prefix(vocab), np.int32)
  lengths = np.asarray(getattr(docs, "lengths", [len(docs[i]["targets"]) for i in range(len(docs))]))
  out = []
  for i in np.flatnonzero(lengths + len(bos) >= min_length):
    out.append(np.concatenate([bos, np.asarray(docs[int(i)]["targets"], np.int32)]))
  return out
