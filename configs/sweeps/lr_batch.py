"""Learning-rate x batch-size grid on the tiny FoT config (the paper's lr x batch sweep, at tiny scale).

python -m fot_jax.launch.sweep --sweep=configs/sweeps/lr_batch.py --root=/tmp/sweeps [--parallel=2]
Variant `:smoke` is a 2x2 grid of a few steps (checks the sweep machinery end to end in about a minute).
"""

from fot_jax.launch.hyper import fixed, grid, product

CONFIG = "configs/experiments/tiny_fot.py"
NAME = "lr_batch"


def get_sweep(variant: str = ""):
  if variant == "smoke":
    return product(fixed({"num_steps": 4, "checkpoint.every_steps": 4, "eval.every_steps": 4, "log.every_steps": 2,
                          "log.tensorboard": False}),
                   grid({"optim.learning_rate": [1e-3, 3e-3], "data.batch_size": [8, 16]}))
  if variant:
    raise ValueError(f"lr_batch: unknown variant {variant!r}; known: '', 'smoke'")
  return grid({"optim.learning_rate": [1e-3, 3e-3, 1e-2], "data.batch_size": [8, 16, 32]})
