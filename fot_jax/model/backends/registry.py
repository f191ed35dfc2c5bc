"""Attention backends by name (`ModelConfig.attention_impl`): how memory layers attend crossbatch in training and
read their memory at inference. Built-in: dense, chunked, splash; `register` adds others."""

from __future__ import annotations

import dataclasses
from typing import Callable

FIELD = "model.attention_impl"


@dataclasses.dataclass(frozen=True)
class AttentionBackend:
  """One attention implementation of memory layers.

  crossbatch(q, k_local, k_mem, v, key_valid, visible, scale, gate, *, ring, partition, chunk_size) -> [B, L, H, hd]:
    training attention over the local context and the window's additional contexts (the arguments of
    `attention.crossbatch_attention_dense`; partition: True when called on the whole, unsharded batch).
  memory_read(q, k_local, v_local, local_mask, state, layer, scale, gate, options) -> [B, T, H, hd]:
    inference attention of memory layer `layer` over [local | memory]; left None, the default streamed read
    (`backends.inference.default_memory_read`) serves it.
  check_vma: shard_map's varying-manual-axes check (Pallas kernels opt out).
  block_loops(seq_len, chunk_size, d) -> {trip count: why}: the loops the kernel adds to a compiled step (for
    compile_check's cross-check); None when it adds none.
  """
  name: str
  crossbatch: Callable
  memory_read: Callable | None = None
  check_vma: bool = True
  block_loops: Callable | None = None


_BACKENDS: dict[str, AttentionBackend] = {}
_builtins_loaded = False


def _load_builtins() -> None:
  """Registers dense/chunked/splash on first use (their kernels import the model modules, which import config)."""
  global _builtins_loaded
  if not _builtins_loaded:
    _builtins_loaded = True
    from fot_jax.model.backends import builtin  # noqa: F401  (registers on import)


def register(backend: AttentionBackend, *, replace: bool = False) -> AttentionBackend:
  """Makes `backend` selectable as attention_impl=backend.name; replace=True overrides an existing one."""
  _load_builtins()
  if not isinstance(backend, AttentionBackend):
    raise TypeError(f"register: expected an AttentionBackend, found {type(backend).__name__}")
  if backend.name in _BACKENDS and not replace:
    raise ValueError(f"{FIELD}: a backend named {backend.name!r} is already registered; pass replace=True")
  _BACKENDS[backend.name] = backend
  return backend


def unregister(name: str) -> None:
  """Removes a registered backend (tests register temporary ones)."""
  _load_builtins()
  _BACKENDS.pop(name, None)


def names() -> tuple[str, ...]:
  """The registered backend names, sorted."""
  _load_builtins()
  return tuple(sorted(_BACKENDS))


def get(name: str) -> AttentionBackend:
  """The backend registered as `name`; ValueError naming the field and the registered names otherwise."""
  _load_builtins()
  try:
    return _BACKENDS[name]
  except (KeyError, TypeError):
    raise ValueError(f"{FIELD}: expected one of the registered attention backends {list(names())}, "
                     f"found {name!r}") from None
