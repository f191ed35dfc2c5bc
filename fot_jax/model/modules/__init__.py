"""The public model API as Flax NNX modules: FoTLlama (decoder), MemoryAttention, InferenceMemory."""

from fot_jax.model.modules.attention import MemoryAttention
from fot_jax.model.modules.decoder import DecoderLayers, FoTLlama, check_tree
from fot_jax.model.modules.memory import InferenceMemory

__all__ = ["DecoderLayers", "FoTLlama", "InferenceMemory", "MemoryAttention", "check_tree"]
