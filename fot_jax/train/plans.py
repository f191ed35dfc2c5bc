"""The FoT d schedule and the crossbatch plan of each training step (config.fot).

d schedules from the paper: fixed d; switch from a small d to a large d at a step; sample d from a set each
step. Mix plans switch too: fot.mix until fot.switch_step, then fot.mix_after (when set), e.g. positives only
first and negatives later. A plan is two small host arrays fed to the jitted step, so only each distinct d
compiles once. The sampled d of a step is a pure function of (seed, step): a resumed run draws the same sequence.
"""

from __future__ import annotations

import numpy as np

from fot_jax.model.crossbatch import CrossbatchPlan, empty_plan, mix_plan, parse_mix, released_plan


def mixes(fot) -> list[str]:
  """The per-position mixes a mix-plan run uses: fot.mix, then fot.mix_after from fot.switch_step when set."""
  after = getattr(fot, "mix_after", "") or ""
  return [fot.mix] + ([after] if after else [])


def mix_d(mix: str) -> int:
  """d of a mix: the largest positives + negatives of any chunk position."""
  return max((p + n for p, n in parse_mix(mix)), default=0)


def mix_at(fot, step: int) -> str:
  ms = mixes(fot)
  return ms[1] if len(ms) > 1 and step >= int(fot.switch_step) else ms[0]


def d_at(fot, step: int, seed: int = 0) -> int:
  """The crossbatch d of training step `step` (0-based)."""
  if fot.plan == "mix":
    return mix_d(mix_at(fot, step))
  if fot.d_schedule == "fixed":
    return int(fot.d)
  if fot.d_schedule == "switch":
    return int(fot.d if step < fot.switch_step else fot.d_after)
  if fot.d_schedule == "sample":
    choices = sorted(int(x) for x in fot.d_choices)
    return choices[int(np.random.default_rng([seed, 7919, step]).integers(len(choices)))]
  raise ValueError(f"config.fot.d_schedule: expected fixed, switch or sample, found {fot.d_schedule!r}")


def make_plan(fot, micro_batch: int, d: int) -> CrossbatchPlan:
  """The plan of one micro-batch of `micro_batch` entries for crossbatch dimension d."""
  if fot.plan == "mix":  # a run's mixes have distinct d (checked by config validation), so d names the mix
    for mix in mixes(fot):
      if mix_d(mix) == d:
        return mix_plan(micro_batch, int(fot.k), parse_mix(mix))
    raise ValueError(f"no mix of this run has d={d}: fot.mix={fot.mix!r}, "
                     f"fot.mix_after={getattr(fot, 'mix_after', '')!r}")
  if d == 0:
    return empty_plan(micro_batch)
  return released_plan(micro_batch, int(fot.k), d, bool(fot.stepping))


class PlanCache:
  """Plans by d (they depend on nothing else during a run)."""

  def __init__(self, fot, micro_batch: int):
    self.fot, self.micro_batch = fot, micro_batch
    self._plans: dict[int, CrossbatchPlan] = {}

  def __call__(self, d: int) -> CrossbatchPlan:
    if d not in self._plans:
      self._plans[d] = make_plan(self.fot, self.micro_batch, d)
    return self._plans[d]
