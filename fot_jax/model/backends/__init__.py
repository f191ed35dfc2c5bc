"""Attention backends of memory layers, selected by name (`ModelConfig.attention_impl`); see registry.py."""

from fot_jax.model.backends.registry import FIELD, AttentionBackend, get, names, register, unregister

__all__ = ["FIELD", "AttentionBackend", "get", "names", "register", "unregister"]
