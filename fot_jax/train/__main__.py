"""`fot-train` / `python -m fot_jax.train --config=configs/<file>.py[:variant] --workdir=DIR [--config.a.b=value ...] [--debug]`.

Thin entry point: load the config (file, variant, overrides), convert it once into the typed TrainConfig (every
value checked), set up logging, call trainer.train. Errors the user must act on (config, files, workdir,
checkpoint, non-finite loss) print one line and exit 2 (fot_jax.cli); --debug shows their traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from fot_jax import cli

PROG = "fot_jax.train"


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m fot_jax.train", description="Trains the model a config file describes; "
                              "resumes from the workdir's latest checkpoint.")
  cli.add_config_flag(p)
  p.add_argument("--workdir", required=True, help="directory for checkpoints and metrics; resumes if it has any")
  p.add_argument("--verbosity", type=int, default=None,
                 help="absl logging verbosity (0: info, 1: debug); default: warnings only, so orbax's "
                      "per-save messages stay off the console")
  cli.add_debug_flag(p)
  return p


def train(args: argparse.Namespace) -> None:
  from absl import logging as absl_logging
  from fot_jax.train import config_file, trainer
  from fot_jax.train.config import TrainConfig
  config = TrainConfig.from_config_dict(config_file.load_config(args.config, args.config_overrides))
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  absl_logging.set_verbosity(absl_logging.WARNING if args.verbosity is None else args.verbosity)
  logging.getLogger("fot_jax").setLevel(logging.INFO)
  result = trainer.train(config, args.workdir)
  print(f"done: {result.stopped} at step {result.step}; workdir {args.workdir}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
  args = cli.parse_config_args(build_parser(), argv)
  return cli.run(lambda: train(args), prog=PROG, debug=args.debug)


def run() -> None:
  """The command line (`python -m fot_jax.train`, `fot-train`)."""
  from fot_jax import platforms
  platforms.use_cpu_without_accelerators()
  sys.exit(main())


if __name__ == "__main__":
  run()
