"""Shared pieces of the evaluation tasks: model/memory flags, model and vocabulary loading, runners, JSON,
figures and progress lines.

Every task is `main(argv) -> int` built from the same parts, so flags mean the same thing everywhere:
  --checkpoint/--step         what to evaluate (orbax workdir or Hugging Face folder)
  --window/--last_context_length/--mem_layers/--mem_dtype   inference overrides (docs/BEHAVIOUR.md section 3)
  --topk/--approx_topk        top-k memory instead of dense memory (docs/BEHAVIOUR.md section 3, kNN variant)
  --ivf_nlist/--ivf_nprobe    with --topk: find the top-k through an IVF index of the memory keys
  --mem_shards                memory sharded over this many devices (a 1-D mesh with axis "memory")
  --out/--figure              the JSON result and the PNG figure
Evaluation code talks to a model only through a *runner* (an object with `encode(tokens) -> logits`, `reset()`
and `memory_size`, i.e. fot_jax.model.inference.MemoryInference), so tests can plug in oracle models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable, Protocol

import numpy as np


class Runner(Protocol):
  """What an evaluation needs from a model with memory; MemoryInference satisfies it.

  The evaluators drive windows themselves (`stream_scores`) so that a 256k-token input never materialises
  [N, vocab] logits: windows(N) gives spec-section-3 spans, flush() evicts the local cache into memory, step()
  runs one span after the cache.
  """

  def windows(self, length: int) -> list[tuple[int, int]]: ...

  def flush(self) -> None: ...

  def step(self, tokens, valid=None) -> Any: ...  # [B, T] -> logits [B, T, V]

  def reset(self) -> None: ...  # empty cache and memory (single-doc)

  @property
  def memory_size(self) -> int: ...


class EvalError(ValueError):
  """A user error (bad flag, missing file); the message names the flag."""


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


def positive(name: str, value: int | None, allow_none: bool = True) -> None:
  if value is None and allow_none:
    return
  if value is None or value <= 0:
    raise EvalError(f"--{name}: expected a positive integer, found {value}")


def int_list(name: str, text: str, minimum: int = 1, kilo: int = 1024) -> list[int]:
  """'1024,4096,32k' -> [1024, 4096, 32768]; k and m suffixes are powers of two (as in '32k tokens'), or of
  `kilo` (1000 for character counts: '30k' -> 30000)."""
  out = []
  for part in str(text).split(","):
    part = part.strip().lower()
    if not part:
      continue
    mult = {"k": kilo, "m": kilo * kilo}.get(part[-1], 1)
    digits = part[:-1] if mult > 1 else part
    try:
      value = int(digits) * mult
    except ValueError as e:
      raise EvalError(f"--{name}: expected comma-separated integers (k/m suffixes allowed), found {text!r}") from e
    if value < minimum:
      raise EvalError(f"--{name}: values must be {'positive' if minimum == 1 else f'>= {minimum}'}, found {value}")
    out.append(value)
  if not out:
    raise EvalError(f"--{name}: expected at least one value, found {text!r}")
  return out


def float_list(name: str, text: str, lo: float = 0.0, hi: float = 1.0) -> list[float]:
  try:
    values = [float(v) for v in str(text).split(",") if v.strip()]
  except ValueError as e:
    raise EvalError(f"--{name}: expected comma-separated numbers, found {text!r}") from e
  if not values or any(not lo <= v <= hi for v in values):
    raise EvalError(f"--{name}: expected numbers in [{lo}, {hi}], found {text!r}")
  return values


def memory_options(args):
  from fot_jax.model.inference import MemoryOptions
  positive("topk", args.topk)
  if args.approx_topk and args.topk is None:
    raise EvalError("--approx_topk needs --topk")
  return MemoryOptions(topk=args.topk, approx=bool(args.approx_topk), **memory_index(args),
                       **memory_mesh(getattr(args, "mem_shards", 1)))


def memory_index(args) -> dict:
  """--ivf_nlist/--ivf_nprobe -> MemoryOptions fields (no index without them)."""
  nlist, nprobe = getattr(args, "ivf_nlist", None), getattr(args, "ivf_nprobe", None)
  if nlist is None:
    if nprobe is not None:
      raise EvalError(f"--ivf_nprobe={nprobe} needs --ivf_nlist (the IVF index)")
    return {}
  positive("ivf_nlist", nlist)
  if args.topk is None:
    raise EvalError(f"--ivf_nlist={nlist}: the IVF index serves top-k memory; add --topk (found dense memory)")
  if args.approx_topk:
    raise EvalError("--ivf_nlist: the IVF index replaces --approx_topk; use one of them")
  if nprobe is None:
    raise EvalError(f"--ivf_nlist={nlist} needs --ivf_nprobe (lists each query probes, 1..{nlist})")
  positive("ivf_nprobe", nprobe)
  if nprobe > nlist:
    raise EvalError(f"--ivf_nprobe={nprobe}: expected at most --ivf_nlist={nlist} lists")
  return {"index": "ivf", "nlist": nlist, "nprobe": nprobe}


def memory_mesh(shards: int) -> dict:
  """--mem_shards -> MemoryOptions fields: a 1-D mesh over the first `shards` devices, axis "memory"."""
  positive("mem_shards", shards, allow_none=False)
  if shards == 1:
    return {}
  import jax
  devices = jax.devices()
  if len(devices) % shards:
    raise EvalError(f"--mem_shards={shards}: expected a divisor of the {len(devices)} devices "
                    f"({jax.default_backend()}), found {shards}")
  mesh = jax.make_mesh((shards,), ("memory",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices[:shards])
  return {"mesh": mesh, "mem_axis": "memory"}


# ---- model, vocabulary, runners --------------------------------------------------------------------------------
@dataclasses.dataclass
class Model:
  params: Any
  config: Any  # ModelConfig after overrides
  checkpoint: str
  step: int | None
  source: str
  no_memory: bool = False  # memory layers keep nothing (--no_memory)


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
  """batch -> a fresh MemoryInference over the model (compiled functions are shared between runners)."""
  from fot_jax.model.inference import MemoryInference

  def factory(batch: int = 1) -> Runner:
    runner = MemoryInference(model.params, model.config, batch, options=options)
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


# ---- scoring helpers --------------------------------------------------------------------------------------------
def _score_span(logits, targets):
  """logits [B, T, V], targets [B, T] -> (log p(target) [B, T], argmax [B, T])."""
  import jax
  import jax.numpy as jnp
  logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  picked = jnp.take_along_axis(logp, jnp.asarray(targets, jnp.int32)[..., None], axis=-1)[..., 0]
  return picked, jnp.argmax(logp, axis=-1).astype(jnp.int32)


_score_span_jit = None


def stream_scores(runner: Runner, tokens) -> tuple[np.ndarray, np.ndarray]:
  """Runs tokens [B, N] through the runner exactly as MemoryInference.encode does (the windows of
  docs/BEHAVIOUR.md section 3, memory kept from earlier calls) and returns (logprobs, predictions), both [B, N-1]:
  logprobs[:, t] = log p(tokens[:, t+1] | ..t) and predictions[:, t] = the greedy guess for token t+1.
  Only one window's logits exist at a time.
  """
  global _score_span_jit
  if _score_span_jit is None:
    import jax
    _score_span_jit = jax.jit(_score_span)
  tokens = np.asarray(tokens, np.int32)
  b, n = tokens.shape
  if n < 2:
    raise ValueError(f"tokens: need at least 2 tokens to score, found {n}")
  targets = np.concatenate([tokens[:, 1:], np.zeros((b, 1), np.int32)], axis=1)  # last position: no target
  logprobs, preds = [], []
  for start, stop in runner.windows(n):
    runner.flush()
    logits = runner.step(tokens[:, start:stop])
    lp, pr = _score_span_jit(logits, targets[:, start:stop])
    logprobs.append(np.asarray(lp))
    preds.append(np.asarray(pr))
  return np.concatenate(logprobs, 1)[:, :-1], np.concatenate(preds, 1)[:, :-1]


def end_scores(runner: Runner, tokens, first_needed: int) -> tuple[np.ndarray, np.ndarray]:
  """stream_scores when only predictions from position first_needed on are read (e.g. an answer at the end).

  When those positions all lie in the final window and the runner can feed (MemoryInference.feed), the front
  only goes into memory (no logits, no read of the top memory layer): the same numbers at a fraction of the cost
  of a long prompt. Positions before the final window are then NaN (logprobs) and -1 (predictions).
  """
  tokens = np.asarray(tokens, np.int32)
  b, n = tokens.shape
  start = runner.windows(n)[-1][0]
  if not hasattr(runner, "feed") or first_needed < start or start == 0:
    return stream_scores(runner, tokens)
  runner.feed(tokens[:, :start])
  logprobs, preds = stream_scores(runner, tokens[:, start:])
  pad = lambda a, value: np.concatenate([np.full((b, start), value, a.dtype), a], axis=1)  # noqa: E731
  return pad(logprobs, np.nan), pad(preds, -1)


def stream_feed(runner: Runner, tokens) -> None:
  """Runs tokens [B, N] into the runner's memory like stream_scores, without scoring (distractor documents)."""
  tokens = np.asarray(tokens, np.int32)
  for start, stop in runner.windows(tokens.shape[1]):
    runner.flush()
    runner.step(tokens[:, start:stop])


def answer_match(predictions, tokens, answer_mask) -> tuple[np.ndarray, np.ndarray]:
  """Teacher-forced scoring of answers: (exact [B] bool: every answer token predicted, token_hits [B, N] bool).

  predictions [B, N-1] from stream_scores; answer_mask [B, N] marks the answer tokens (never token 0).
  """
  tokens = np.asarray(tokens)
  answer_mask = np.asarray(answer_mask, bool)
  if answer_mask[:, 0].any():
    raise ValueError("answer_mask: the first token cannot be scored (nothing predicts it)")
  hits = np.zeros(tokens.shape, bool)
  hits[:, 1:] = np.asarray(predictions) == tokens[:, 1:]
  exact = (hits | ~answer_mask).all(axis=1)
  return exact, hits & answer_mask


def batched_answer_hits(runner_factory, tokens, answer_masks, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """answer_match over rows of tokens [N, L] in batches of batch_size, memory reset for every batch (single-doc):
  (exact [N] bool, token_hits [N, L] bool). The last batch is padded with copies of its last row, unscored."""
  tokens, answer_masks = np.asarray(tokens), np.asarray(answer_masks, bool)
  runner = runner_factory(min(batch_size, len(tokens)))
  exact, hits = [], []
  for start in range(0, len(tokens), batch_size):
    t, m = tokens[start:start + batch_size], answer_masks[start:start + batch_size]
    n = len(t)
    if n < runner.batch:
      t = np.concatenate([t, np.repeat(t[-1:], runner.batch - n, 0)])
      m = np.concatenate([m, np.repeat(m[-1:], runner.batch - n, 0)])
    runner.reset()
    _, preds = stream_scores(runner, t)
    ex, h = answer_match(preds, t, m)
    exact.append(ex[:n])
    hits.append(h[:n])
  return np.concatenate(exact), np.concatenate(hits)


# ---- output ----------------------------------------------------------------------------------------------------
def write_json(path: str, result: dict) -> None:
  """Writes a result atomically; every result records the vocabulary its token ids mean."""
  if "vocab" not in result:
    raise ValueError(f"internal: the {result.get('task')!r} result records no vocabulary")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(_jsonable(result), f, indent=1, sort_keys=False, allow_nan=True)
    f.write("\n")
  os.replace(tmp, path)


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return _jsonable(x.tolist())
  if isinstance(x, (np.floating, float)):
    return None if math.isnan(float(x)) else float(x)
  if isinstance(x, np.integer):
    return int(x)
  if isinstance(x, np.bool_):
    return bool(x)
  return x


def figure_path(args) -> str:
  if getattr(args, "figure", None):
    return args.figure
  root, _ = os.path.splitext(args.out)
  return root + ".png"


def pyplot():
  """matplotlib.pyplot on the Agg backend (no display needed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  pyplot().close(fig)


def model_summary(model: Model, options) -> dict:
  c = model.config
  return {"checkpoint": os.path.abspath(model.checkpoint), "step": model.step, "source": model.source,
          "mem_layers": list(c.mem_layers), "window": c.max_position_embeddings,
          "last_context_length": c.last_context_length, "mem_dtype": c.mem_dtype,
          "topk": options.topk, "approx_topk": options.approx, "ivf_nlist": options.nlist,
          "ivf_nprobe": options.nprobe, "memory": "off" if model.no_memory else "on",
          "mem_shards": 1 if options.mesh is None else options.mesh.shape[options.mem_axis]}


class Progress:
  """'task: i/n (x.x s) detail' lines on stderr, at most every `every` seconds (always the last one)."""

  def __init__(self, task: str, total: int, quiet: bool = False, every: float = 5.0):
    self.task, self.total, self.quiet, self.every = task, total, quiet, every
    self.start = self.last = time.time()

  def __call__(self, done: int, detail: str = "") -> None:
    now = time.time()
    if self.quiet or (now - self.last < self.every and done < self.total):
      return
    self.last = now
    print(f"{self.task}: {done}/{self.total} ({now - self.start:.1f}s) {detail}", file=sys.stderr, flush=True)


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
