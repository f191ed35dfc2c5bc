"""Crossbatch d schedules on the tiny FoT config: fixed d against the small-to-large switch.

Zipped axes keep each schedule's fields together (a fixed d needs no d_after), then chained into one sweep.
python -m fot_jax.launch.sweep --sweep=configs/sweeps/d_schedule.py --root=/tmp/sweeps
"""

from fot_jax.launch.hyper import chain, fixed, grid, product, sweep, zipped

CONFIG = "configs/experiments/tiny_fot.py"
NAME = "d_schedule"


def get_sweep(variant: str = ""):
  if variant:
    raise ValueError(f"d_schedule: unknown variant {variant!r}; known: ''")
  fixed_d = product(fixed({"fot.d_schedule": "fixed"}), grid({"fot.d": [0, 2, 6]}))
  switch = product(fixed({"fot.d_schedule": "switch", "fot.switch_step": 150}),
                   zipped(sweep("fot.d", [2, 4]), sweep("fot.d_after", [6, 8])))
  return chain(fixed_d, switch)
