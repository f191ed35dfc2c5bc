"""The decoder stack in training mode: ordinary layers attend causally, memory layers attend crossbatch.

forward(params, tokens, config, visible=...) is a pure function, jit-able and differentiable; runs of identical
ordinary layers are scanned (memory layers break the runs), each layer optionally rematerialised.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from fot_jax.model import attention
from fot_jax.model.backends.training import crossbatch_attention
from fot_jax.model.config import ModelConfig, layer_runs
from fot_jax.model.layers import l2_normalize, rms_norm, swiglu_mlp
from fot_jax.model.params import Params, layer_slice
from fot_jax.model.rope import rope_keys, rope_queries

REMAT_POLICIES: dict[str, Callable | None] = {
    # name -> jax.checkpoint policy; "none" keeps every activation, "full" saves nothing inside a layer.
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def project_qkv(lp: Params, h: jax.Array, config: ModelConfig):
  """h [B, T, D] -> q [B, T, H, hd], k, v [B, T, K, hd]."""
  b, t, _ = h.shape
  dtype = h.dtype
  q = (h @ lp["q_proj"].astype(dtype)).reshape(b, t, config.num_heads, config.head_dim)
  k = (h @ lp["k_proj"].astype(dtype)).reshape(b, t, config.kv_heads, config.head_dim)
  v = (h @ lp["v_proj"].astype(dtype)).reshape(b, t, config.kv_heads, config.head_dim)
  return q, k, v


def memory_qk(lp: Params, q: jax.Array, k: jax.Array, config: ModelConfig):
  """Memory-layer q/k before positions: optional normalisation with a learnable temperature. Returns q, k, scale."""
  if not config.qk_norm:
    return q, k, 1.0 / math.sqrt(config.head_dim)
  temperature = lp["qk_temperature"].astype(jnp.float32)[None, None, :, None]
  q = (l2_normalize(q).astype(jnp.float32) * temperature).astype(q.dtype)
  return q, l2_normalize(k), 1.0


def finish_layer(lp: Params, x: jax.Array, attn_out: jax.Array, config: ModelConfig) -> jax.Array:
  """Output projection, residual, then the MLP sub-block."""
  b, t = x.shape[:2]
  x = x + attn_out.reshape(b, t, -1) @ lp["o_proj"].astype(x.dtype)
  h = rms_norm(x, lp["post_attention_layernorm"], config.norm_eps)
  return x + swiglu_mlp(h, lp["gate_proj"], lp["up_proj"], lp["down_proj"])


def memory_layer_attention(lp: Params, q: jax.Array, k: jax.Array, v: jax.Array, key_valid: jax.Array,
                           visible: jax.Array, config: ModelConfig) -> jax.Array:
  """A memory layer's attention with crossbatch negatives: q/k normalisation, positions, then the backend
  `config.attention_impl` over the local context and the plan's window of earlier entries. -> [B, L, H, hd]."""
  length = q.shape[1]
  positions = jnp.arange(length)
  q, k, scale = memory_qk(lp, q, k, config)
  if config.mem_positionals == "first":
    q_pos, k_local = rope_queries(q, positions, config, length), rope_keys(k, positions, config, length)
  else:
    q_pos, k_local = q, k
  gate = lp.get("mem_gate") if config.mem_gate else None
  return crossbatch_attention(q_pos, k_local, k, v, key_valid, visible, scale, gate, config.attention_impl,
                              config.attention_chunk_size)


# (layer params, q, k, v, key_valid, visible) -> [B, L, H, hd]: what memory layers attend with.
MemoryAttentionFn = Callable[[Params, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def train_layer(lp: Params, x: jax.Array, key_valid: jax.Array, visible: jax.Array, is_mem: bool,
                config: ModelConfig, mem_attention: MemoryAttentionFn | None = None) -> jax.Array:
  """One decoder layer on [B, L, D]; memory layers attend crossbatch to the plan's window of earlier entries
  (through mem_attention, default memory_layer_attention)."""
  length = x.shape[1]
  h = rms_norm(x, lp["input_layernorm"], config.norm_eps)
  q, k, v = project_qkv(lp, h, config)
  if is_mem:
    if mem_attention is None:
      out = memory_layer_attention(lp, q, k, v, key_valid, visible, config)
    else:
      out = mem_attention(lp, q, k, v, key_valid, visible)
  else:
    positions = jnp.arange(length)
    q = rope_queries(q, positions, config, length)
    k = rope_keys(k, positions, config, length)
    out = attention.causal_attention(q, k, v, key_valid, 1.0 / math.sqrt(config.head_dim))
  return finish_layer(lp, x, out, config)


def embed(params: Params, tokens: jax.Array, config: ModelConfig) -> jax.Array:
  return params["embed_tokens"][tokens].astype(jnp.dtype(config.dtype))


def unembed(params: Params, x: jax.Array, config: ModelConfig) -> jax.Array:
  """Final norm and LM head; logits in float32 [B, T, V]."""
  x = rms_norm(x, params["norm"], config.norm_eps)
  return jnp.einsum("btd,dv->btv", x, params["lm_head"].astype(x.dtype), preferred_element_type=jnp.float32)


def forward(params: Params, tokens: jax.Array, config: ModelConfig, *, input_mask: jax.Array | None = None,
            visible: jax.Array | None = None, scan_layers: bool = True,
            remat: str = "none", activation_sharding: jax.sharding.Sharding | None = None,
            return_hidden: bool = False) -> Any:
  """Training-mode forward: tokens [B, L] -> logits [B, L, V] float32.

  input_mask [B, L] marks real tokens (padding keys are masked); visible [B, W] is a CrossbatchPlan's runtime
  mask over its static window (slot c of entry b holds entry b - c - 1; None -> W = 0: memory layers see only
  their local context). Under a batch-sharded context mesh (jax.set_mesh) the window's keys/values come from
  neighbouring devices (fot_jax.model.exchange). activation_sharding [B, L, D] pins each layer's input and
  output (batch over the data axes), so XLA gathers weights rather than activations.
  """
  x = embed(params, tokens, config)
  x = run_layers(params["layers"], x, config, input_mask, visible, scan_layers=scan_layers, remat=remat,
                 activation_sharding=activation_sharding)
  logits = unembed(params, x, config)
  return (logits, x) if return_hidden else logits


def run_layers(layers: Params, x: jax.Array, config: ModelConfig, input_mask: jax.Array | None = None,
               visible: jax.Array | None = None, *, scan_layers: bool = True, remat: str = "none",
               activation_sharding: jax.sharding.Sharding | None = None,
               mem_attention: MemoryAttentionFn | None = None) -> jax.Array:
  """The decoder stack on embeddings x [B, L, D] with the stacked layer params; arguments as forward.

  Each run of identical ordinary layers is one lax.scan over its slice of the stacked params (memory layers
  break the runs); mem_attention replaces the memory layers' attention (default memory_layer_attention).
  """
  b, length = x.shape[:2]
  if input_mask is None:
    input_mask = jnp.ones((b, length), bool)
  if visible is None:
    visible = jnp.zeros((b, 0), bool)
  if remat not in REMAT_POLICIES:
    raise ValueError(f"remat: expected one of {sorted(REMAT_POLICIES)}, found {remat!r}")

  def make_layer(is_mem: bool):
    fn = lambda lp, x: train_layer(lp, x, input_mask, visible, is_mem, config, mem_attention)
    if remat != "none":
      fn = jax.checkpoint(fn, policy=REMAT_POLICIES[remat])
    if activation_sharding is None:
      return fn
    pin = lambda x: jax.lax.with_sharding_constraint(x, activation_sharding)
    return lambda lp, x: pin(fn(lp, pin(x)))

  for start, stop, is_mem in layer_runs(config):
    fn = make_layer(is_mem)
    if scan_layers and stop - start > 1:
      x, _ = jax.lax.scan(lambda carry, lp: (fn(lp, carry), None), x, layer_slice(layers, start, stop))
    else:
      for i in range(start, stop):
        x = fn(layer_slice(layers, i), x)
  return x
