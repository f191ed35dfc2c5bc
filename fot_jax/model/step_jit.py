"""jax.jit for the inference steps that read memory block by block, with the CPU backend kept from hoisting a
float32 copy of bf16 memory out of the block loops.

XLA's CPU compiler computes bf16 dot products in float32: it converts the memory operand, moves that conversion
ahead of the block's dynamic slice, and then while-loop invariant code motion lifts the conversion of the whole
memory out of the loop, so the step's temporaries grow with the memory (and every call converts all of it). With
that pass off the conversion stays fused with the block read. Other backends compute bf16 dots natively and keep
their default passes. The backend is read at the first call, not at import (jax.distributed must come first).
"""

from __future__ import annotations

import jax

CPU_COMPILER_OPTIONS = {"xla_disable_hlo_passes": "while-loop-invariant-code-motion"}


class MemoryStepJit:
  """jax.jit(fun, **jit_kwargs), with CPU_COMPILER_OPTIONS on the CPU backend; callable and `.lower`-able."""

  def __init__(self, fun, **jit_kwargs):
    self.fun, self.jit_kwargs, self._jitted = fun, jit_kwargs, None
    self.__doc__, self.__name__ = fun.__doc__, getattr(fun, "__name__", type(fun).__name__)

  def jitted(self):
    if self._jitted is None:
      options = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
      self._jitted = jax.jit(self.fun, compiler_options=options, **self.jit_kwargs)
    return self._jitted

  def __call__(self, *args, **kwargs):
    return self.jitted()(*args, **kwargs)

  def lower(self, *args, **kwargs):
    return self.jitted().lower(*args, **kwargs)


def memory_step_jit(**jit_kwargs):
  """Decorator form of MemoryStepJit."""
  return lambda fun: MemoryStepJit(fun, **jit_kwargs)
