"""`python -m fot_jax.train --config=configs/<file>.py[:variant] --workdir=DIR [--config.a.b=value ...]`.

Thin entry point: parse flags, set up logging, call trainer.train. Errors the user must act on (config, workdir,
checkpoint, non-finite loss) print one clear line and exit non-zero.
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

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
  from fot_jax.train.config_validation import ConfigError
  try:
    result = trainer.train(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, trainer.TrainingError) as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  print(f"done: {result.stopped} at step {result.step}; workdir {_WORKDIR.value}", flush=True)


if __name__ == "__main__":
  app.run(main)
