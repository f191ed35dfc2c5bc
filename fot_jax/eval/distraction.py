"""`python -m fot_jax.evaluate distraction`: the positive attention mass r_d of docs/BEHAVIOUR.md section 5.

For a memory layer, a query segment of a document (L tokens, local positions 0..L-1) attends to d additional
contexts of L tokens each, keys at position 0 as in crossbatch training and memory inference: the document's
own previous L tokens (the positive) and the previous-context segments of d-1 other documents (negatives).
r_d = softmax mass on the positive's keys / mass on all d contexts' keys (the local keys share the softmax
denominator, so they cancel). A model that cannot tell its own context from others gives r_d ~ 1/d; FoT's
contrastive training should raise it. r_d is averaged over queries, heads and documents.

The stack below the layer runs with the model's own building blocks (training-mode layers, no additional
contexts); with several memory layers the lower ones therefore see only their local context here.
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np

from fot_jax.eval import common
from fot_jax.model import attention
from fot_jax.model.layers import rms_norm
from fot_jax.model.params import layer_slice
from fot_jax.model.rope import rope_queries
from fot_jax.model.transformer import embed, memory_qk, project_qkv, train_layer


# ---- the measure -------------------------------------------------------------------------------------------------
def positive_ratio(ctx_logits, topk: int | None = None):
  """r per query: ctx_logits [..., d, L] (context 0 is the positive) -> softmax mass of context 0 among all
  d*L keys. topk: only each query's k largest keys count (top-k memory)."""
  logits = jnp.asarray(ctx_logits, jnp.float32)
  d, length = logits.shape[-2:]
  flat = logits.reshape(logits.shape[:-2] + (d * length,))
  if topk is not None and topk < d * length:
    kth = jax.lax.top_k(flat, topk)[0][..., -1:]
    flat = jnp.where(flat >= kth, flat, -jnp.inf)
  probs = jax.nn.softmax(flat, axis=-1)
  return probs[..., :length].sum(-1)


# ---- the model below and at the layer ----------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("config", "layer"))
def layer_qk(params, tokens, *, config, layer: int):
  """Segments tokens [N, L] -> (queries rotated at 0..L-1 [N, L, H, hd], keys unrotated [N, L, K, hd])
  of `layer`, after layers 0..layer-1 ran in training mode without additional contexts."""
  n, length = tokens.shape
  valid = jnp.ones((n, length), bool)
  no_contexts = jnp.zeros((n, 0), bool)  # a window of 0 additional contexts
  x = embed(params, tokens, config)
  for i in range(layer):
    x = train_layer(layer_slice(params["layers"], i), x, valid, no_contexts, config.is_mem_layer(i), config)
  lp = layer_slice(params["layers"], layer)
  q, k, _ = project_qkv(lp, rms_norm(x, lp["input_layernorm"], config.norm_eps), config)
  q, k, scale = memory_qk(lp, q, k, config)
  if config.mem_positionals == "first" or not config.is_mem_layer(layer):
    q = rope_queries(q, jnp.arange(length), config, length)
  return q * scale, k  # scale folded into q


@functools.partial(jax.jit, static_argnames=("topk",))
def _ratios(q, keys, context_ids, topk):
  """q [Bq, L, H, hd], keys [n, L, K, hd], context_ids [Bq, D] (positive first) -> r [Bq, D-1] for d = 2..D,
  averaged over heads and query positions. Negative sets are nested: d uses the first d-1 negatives."""
  chosen = keys[context_ids]  # [Bq, D, L, K, hd]
  bq, big_d, length = chosen.shape[:3]
  logits = attention.attention_logits(q, chosen.reshape(bq, big_d * length, *chosen.shape[3:]), 1.0)
  logits = logits.reshape(logits.shape[:-1] + (big_d, length))  # [Bq, K, G, T, D, L]
  out = [positive_ratio(logits[..., :d, :], topk).mean(axis=(1, 2, 3)) for d in range(2, big_d + 1)]
  return jnp.stack(out, axis=1)


# ---- data ----------------------------------------------------------------------------------------------------------
def segments(docs: list[np.ndarray], length: int, per_doc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(contexts [n, L], queries [n, L], doc ids [n]): up to per_doc non-overlapping 2L-token pieces per document,
  spread over the document; each piece is (previous context, query segment)."""
  ctx, qry, ids = [], [], []
  for i, d in enumerate(docs):
    count = len(d) // (2 * length)
    if count == 0:
      continue
    for j in np.linspace(0, count - 1, min(per_doc, count)).astype(int):
      s = j * 2 * length
      ctx.append(d[s:s + length])
      qry.append(d[s + length:s + 2 * length])
      ids.append(i)
  if not ctx:
    return np.zeros((0, length), np.int32), np.zeros((0, length), np.int32), np.zeros(0, int)
  return np.stack(ctx), np.stack(qry), np.asarray(ids)


def context_sets(doc_ids: np.ndarray, max_d: int, num_queries: int, seed: int) -> np.ndarray:
  """[num_queries, max_d] context indices per query segment: its own context first, then max_d-1 contexts of
  OTHER documents in a seeded order (nested prefixes give each d)."""
  rng = np.random.default_rng(seed)
  n = len(doc_ids)
  queries = rng.permutation(n)[:num_queries]
  out = []
  for qi in queries:
    others = np.flatnonzero(doc_ids != doc_ids[qi])
    if len(others) < max_d - 1:
      raise common.EvalError(f"--contexts: d={max_d} needs {max_d - 1} contexts of other documents, only "
                             f"{len(others)} exist; lower --contexts or raise --segments_per_doc")
    out.append(np.concatenate([[qi], rng.permutation(others)[:max_d - 1]]))
  return np.stack(out)


def measure(params, config, contexts: np.ndarray, queries: np.ndarray, sets: np.ndarray, layers, ds,
            topk: int | None = None, batch: int = 8, progress=None) -> dict:
  """{layer: {"r": [mean r_d per d], "std": [...]} } for d in ds; sets from context_sets (rows = query segs)."""
  out = {}
  big_d = sets.shape[1]
  used, local_sets = np.unique(sets, return_inverse=True)  # only the contexts some query sees go through the model
  local_sets = local_sets.reshape(sets.shape)
  for li, layer in enumerate(layers):
    _, keys = _run_batched(params, config, contexts[used], layer, batch)
    q_all, _ = _run_batched(params, config, queries[sets[:, 0]], layer, batch)
    rows = []
    for start in range(0, len(sets), batch):
      s = local_sets[start:start + batch]
      rows.append(np.asarray(_ratios(q_all[start:start + batch], keys, jnp.asarray(s), topk)))
    r = np.concatenate(rows)  # [num_queries, D-1], column d-2 -> d
    cols = [d - 2 for d in ds]
    out[str(layer)] = {"r": r[:, cols].mean(0).tolist(), "std": r[:, cols].std(0).tolist()}
    if progress:
      progress(li + 1, f"layer {layer}: r_{big_d}={r[:, -1].mean():.3f}")
  return out


def _run_batched(params, config, tokens, layer, batch):
  qs, ks = [], []
  for start in range(0, len(tokens), batch):
    chunk = tokens[start:start + batch]
    pad = batch - len(chunk)
    q, k = layer_qk(params, jnp.asarray(np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)]) if pad else chunk),
                    config=config, layer=layer)
    qs.append(q[:len(chunk)])
    ks.append(k[:len(chunk)])
  return jnp.concatenate(qs), jnp.concatenate(ks)


def plot(result: dict, path: str, compare=(), label: str = "") -> None:
  plt = common.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  ds = np.array(result["contexts"])
  ax.plot(ds, 1 / ds, color="gray", ls=":", label="1/d (no focus)")
  for name, res in [(label, result), *compare]:
    for layer, v in res["layers"].items():
      suffix = f" (layer {layer})" if len(res["layers"]) > 1 else ""
      ax.errorbar(res["contexts"], v["r"], yerr=v["std"], marker="o", capsize=2, label=f"{name}{suffix}")
  ax.set_yscale("log", base=2)
  common.finish_axes(ax, "d: contexts the memory layer sees (1 positive, d-1 negatives)",
                     "positive attention mass r_d", "distraction")
  common.save_figure(fig, path)


def build_parser():
  p = common.make_parser("distraction", __doc__.splitlines()[0])
  common.add_vocab_flags(p)
  common.add_corpus_flags(p)
  common.add_compare_flag(p)
  p.add_argument("--contexts", default="2,4,8,16,32,64", help="values of d, comma-separated")
  p.add_argument("--context_length", type=int, default=None,
                 help="L: tokens per context and query segment (default: the model's last_context_length)")
  p.add_argument("--num_queries", type=int, default=64, help="query segments averaged over")
  p.add_argument("--segments_per_doc", type=int, default=16, help="at most this many segments per document")
  p.add_argument("--layers", default=None, help="layers to measure (default: the memory layers)")
  p.add_argument("--batch_size", type=int, default=8, help="segments per pass")
  return p


def run(args) -> dict:
  from fot_jax.model.config import parse_mem_layers
  ds = common.int_list("contexts", args.contexts)
  if min(ds) < 2:
    raise common.EvalError(f"--contexts: d must be >= 2 (one positive and at least one negative), found {ds}")
  for flag in ("num_queries", "segments_per_doc", "batch_size", "context_length"):
    common.positive(flag, getattr(args, flag), allow_none=flag == "context_length")
  compare = common.compare_results(args, "distraction")
  options = common.memory_options(args)
  model = common.load(args)
  config = model.config
  try:
    layers = parse_mem_layers(args.layers) if args.layers is not None else config.mem_layers
  except ValueError as e:
    raise common.EvalError(f"--layers: expected comma-separated integers, found {args.layers!r}") from e
  if not layers:
    raise common.EvalError("--layers: the model has no memory layers; name the layers to measure")
  bad = [i for i in layers if not 0 <= i < config.num_layers]
  if bad:
    raise common.EvalError(f"--layers: {bad} outside [0, {config.num_layers})")
  length = args.context_length or config.last_context_length
  vocab = common.load_vocab(args)
  common.check_vocab_fits(vocab, config)
  docs = common.load_documents(args, vocab, 2 * length)
  contexts, queries, ids = segments(docs, length, args.segments_per_doc)
  if len(contexts) == 0:
    raise common.EvalError(f"--context_length={length}: no {args.corpus}/{args.split} document has 2L tokens")
  sets = context_sets(ids, max(ds), min(args.num_queries, len(contexts)), args.seed)
  layer_results = measure(model.params, config, contexts, queries, sets, layers, ds, options.topk,
                          args.batch_size, common.Progress("distraction", len(layers), args.quiet, every=0.0))
  result = {"task": "distraction", "label": common.run_label(args), "model": common.model_summary(model, options),
            "vocab": common.vocab_record(args, vocab),
            "corpus": args.corpus, "split": args.split, "context_length": length, "contexts": ds,
            "num_queries": int(len(sets)), "num_documents": int(len(set(ids.tolist()))), "layers": layer_results}
  return common.publish(args, result, plot, compare)


def main(argv=None) -> int:
  return common.run_main("distraction", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
