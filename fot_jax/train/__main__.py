"""`fot-train` / `python -m fot_jax.train --config=configs/<file>.py[:variant] --workdir=DIR [--config.a.b=value ...] [--debug]`.

Thin entry point: check the config (file, variant, override keys), parse flags, convert the ml_collections
config once into the typed TrainConfig (every value checked), set up logging, call trainer.train. Errors the
user must act on (config, files, workdir, checkpoint, non-finite loss) print one line and exit 2 (fot_jax.cli);
--debug shows their traceback.
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from fot_jax import cli, platforms
from fot_jax.train import config_file

PROG = "fot_jax.train"
_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/...py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics; resumes if it has any.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO through absl: keep the console readable
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("fot_jax").setLevel(logging.INFO)
  from fot_jax.train import trainer
  from fot_jax.train.config import TrainConfig
  config = TrainConfig.from_config_dict(_CONFIG.value)
  result = trainer.train(config, _WORKDIR.value)
  print(f"done: {result.stopped} at step {result.step}; workdir {_WORKDIR.value}", flush=True)


def run() -> None:
  """The command line (`python -m fot_jax.train`, `fot-train`): main under the error policy of fot_jax.cli."""
  platforms.use_cpu_without_accelerators()
  cli.run_absl(main, sys.argv, prog=PROG, precheck=config_file.check_argv)


if __name__ == "__main__":
  run()
