"""config.fot: the FoT crossbatch plans of a run and the d schedule that picks one per training step.

d schedules from the paper: fixed d; switch from a small d to a large d at a step; sample d from a set each
step. Mix plans switch too: fot.mix until fot.switch_step, then fot.mix_after (when set), e.g. positives only
first and negatives later. Each plan a run can use is a PlanChoice, named by what it is (a mix or a released d),
not by its d, so two mixes with the same d are two plans. A step's choice is a pure function of (seed, step): a
resumed run draws the same sequence.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from fot_jax.model.crossbatch import CrossbatchPlan, empty_plan, mix_plan, mix_window, parse_mix, released_plan
from fot_jax.train.config.fields import (
    Invalid, Section, boolean, fail, non_negative_int, one_of, positive_int, setting, text, tuple_of)


@dataclasses.dataclass(frozen=True)
class PlanChoice:
  """One crossbatch plan of a run: a per-position mix (mix != ()) or the released plan with d."""
  d: int
  mix: tuple[tuple[int, int], ...] = ()

  @property
  def name(self) -> str:
    return "mix " + ",".join(f"{p}:{n}" for p, n in self.mix) if self.mix else f"released d={self.d}"

  @property
  def window(self) -> int:
    """W: the crossbatch window (slots) of the plan, the shape its train step compiles for."""
    return mix_window(self.mix) if self.mix else self.d

  def build(self, micro_batch: int, k: int, stepping: bool) -> CrossbatchPlan:
    """The plan of one micro-batch of `micro_batch` entries."""
    if self.mix:
      return mix_plan(micro_batch, k, self.mix)
    if self.d == 0:
      return empty_plan(micro_batch)
    return released_plan(micro_batch, k, self.d, stepping)


def _mix_text(value) -> str:
  value = text(value)
  try:
    parse_mix(value)
  except ValueError as e:
    raise Invalid(f"'positives:negatives' pairs ({e})") from None
  return value


def mix_choice(mix: str) -> PlanChoice:
  pairs = parse_mix(mix)
  return PlanChoice(max((p + n for p, n in pairs), default=0), pairs)


def _fixed(c: "CrossbatchConfig", step: int, seed: int) -> PlanChoice:
  return c.choices()[0]


def _switch(c: "CrossbatchConfig", step: int, seed: int) -> PlanChoice:
  choices = c.choices()
  return choices[-1] if step >= c.switch_step else choices[0]


def _sample(c: "CrossbatchConfig", step: int, seed: int) -> PlanChoice:
  choices = c.choices()
  return choices[int(np.random.default_rng([seed, 7919, step]).integers(len(choices)))]


# d_schedule name -> (config, step, seed) -> the step's plan. The config's check reads the names from here.
D_SCHEDULES: dict[str, Callable[["CrossbatchConfig", int, int], PlanChoice]] = {
    "fixed": _fixed, "switch": _switch, "sample": _sample}
# plan name -> the plans a run of that kind can use.
PLANS: dict[str, Callable[["CrossbatchConfig"], tuple[PlanChoice, ...]]] = {
    "released": lambda c: c.released_choices(),
    "mix": lambda c: tuple(mix_choice(m) for m in (c.mix, c.mix_after) if m),
}


@dataclasses.dataclass(frozen=True)
class CrossbatchConfig(Section):
  """Which earlier entries each memory layer also attends to, per training step."""
  NAME = "fot"
  k: int = setting(1, positive_int)  # entries per document stream (k-packing)
  plan: str = setting("released", one_of(PLANS))
  stepping: bool = setting(True, boolean)  # released plan: positives-stepping when k > 1
  mix: str = setting("", _mix_text)  # plan="mix": 'positives:negatives' per chunk position
  mix_after: str = setting("", _mix_text)  # plan="mix": replaces mix from switch_step on, when set
  d_schedule: str = setting("fixed", one_of(D_SCHEDULES))
  d: int = setting(0, non_negative_int)
  d_after: int = setting(0, non_negative_int)
  switch_step: int = setting(0, non_negative_int)
  d_choices: tuple[int, ...] = setting((), tuple_of(non_negative_int, "a tuple of non-negative integers"))

  def check(self) -> None:
    if self.plan == "mix":
      for field in ("mix", "mix_after") if self.mix_after else ("mix",):
        pairs = parse_mix(getattr(self, field))
        if len(pairs) != self.k:
          fail(self.path(field), f"one pair per chunk position (fot.k={self.k})", getattr(self, field))
        for j, (p, _) in enumerate(pairs):
          if p > j:
            fail(self.path(field), f"at most {j} positives at chunk position {j}", getattr(self, field))
    elif self.d_schedule == "sample" and not self.d_choices:
      fail(self.path("d_choices"), "a non-empty tuple of non-negative integers", self.d_choices)

  def released_choices(self) -> tuple[PlanChoice, ...]:
    ds = {"fixed": [self.d], "switch": [self.d, self.d_after], "sample": sorted(self.d_choices)}
    return tuple(PlanChoice(d) for d in ds[self.d_schedule])

  def choices(self) -> tuple[PlanChoice, ...]:
    """Every plan the run can use, in schedule order (one compiled train step per distinct window)."""
    return PLANS[self.plan](self)

  def d_values(self) -> list[int]:
    """The distinct crossbatch d of the plans the run can use."""
    return list(dict.fromkeys(choice.d for choice in self.choices()))

  def windows(self) -> list[int]:
    """The distinct crossbatch windows W of the plans the run can use."""
    return list(dict.fromkeys(choice.window for choice in self.choices()))

  def choice_at(self, step: int, seed: int = 0) -> PlanChoice:
    """The plan of training step `step` (0-based)."""
    schedule = ("switch" if self.mix_after else "fixed") if self.plan == "mix" else self.d_schedule
    return D_SCHEDULES[schedule](self, step, seed)

  def check_batch(self, micro_size: int) -> None:
    """The plans against the micro-batch size (the entries crossbatch attention mixes)."""
    if self.plan == "mix":
      for field in ("mix", "mix_after") if self.mix_after else ("mix",):
        if any(n > micro_size - self.k for _, n in parse_mix(getattr(self, field))):
          fail(self.path(field), f"at most {micro_size - self.k} negatives (micro-batch {micro_size} minus the "
               f"own stream)", getattr(self, field))
      return
    field = {"fixed": "d", "switch": "d/fot.d_after", "sample": "d_choices"}[self.d_schedule]
    for d in self.d_values():
      if d >= micro_size:
        fail(self.path(field), f"d below the micro-batch size data.batch_size/data.micro_batches = {micro_size}",
             d)
