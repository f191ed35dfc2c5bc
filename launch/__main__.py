"""`fot-launch COMMAND [flags]` (or `python -m fot_jax.launch COMMAND`): one entry point for the launchers.

Each command is a module of this package with `main(argv) -> int`; `python -m fot_jax.launch.COMMAND` runs the
same function.
"""

from __future__ import annotations

import sys

from fot_jax import cli

COMMANDS = {
    "local": "fot_jax.launch.local",  # one training as several JAX processes on this host
    "tpu": "fot_jax.launch.tpu",  # create, ship to, run on, watch and delete a Cloud TPU VM
    "sweep": "fot_jax.launch.sweep",  # a hyperparameter grid over one config, locally or on a TPU
    "experiment": "fot_jax.launch.experiment",  # dependent trainings and their evaluations under a deadline
}
USAGE = "fot-launch (or python -m fot_jax.launch) COMMAND [flags]"


def main(argv=None) -> int:
  return cli.dispatch(list(sys.argv[1:] if argv is None else argv), COMMANDS, USAGE, "COMMAND")


if __name__ == "__main__":
  sys.exit(main())
