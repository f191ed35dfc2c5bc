"""InferenceMemory: FoT inference with memory (encode, feed, step, generate) driven from an FoTLlama module."""

from __future__ import annotations

from fot_jax.model.inference import MemoryInference


class InferenceMemory(MemoryInference):
  """MemoryInference over a module's parameters and config; the memory read goes through the attention backend
  registry (`config.attention_impl`). Keeps the module as `.model`."""

  def __init__(self, model, batch: int = 1, **kwargs):
    self.model = model
    super().__init__(model.params(), model.config, batch, **kwargs)
