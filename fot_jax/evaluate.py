"""`python -m fot_jax.evaluate TASK [flags]`: dispatches to one evaluation module per task.

Each task module exposes `main(argv) -> int`. Add a task by adding a line to TASKS.
"""

from __future__ import annotations

import sys

TASKS = {
    "logprobs": "fot_jax.eval.logprobs",  # per-token log-probabilities with memory inference
    "perplexity": "fot_jax.eval.perplexity",  # loss vs context length, single-doc and multi-doc memory
    "passkey": "fot_jax.eval.passkey",  # passkey retrieval accuracy: the authors' prompts (or length x depth)
    "dict_lookup": "fot_jax.eval.dict_lookup",  # dictionary lookup accuracy vs dictionary tokens in memory
    "copy_distance": "fot_jax.eval.copy_distance",  # id-level passkey: copy a random needle from D tokens back
    "distraction": "fot_jax.eval.distraction",  # positive attention mass r_d vs number of contexts d
    "generate": "fot_jax.eval.generate",  # greedy generation with memory from a prompt file
    "summary": "fot_jax.eval.summary",  # the main job's table: passkey, loss beyond local, r_d; memory on vs off
}

USAGE = "fot-eval (or python -m fot_jax.evaluate) TASK [flags]"


def main(argv=None) -> int:
  from fot_jax import cli, platforms
  platforms.use_cpu_without_accelerators()
  return cli.dispatch(list(sys.argv[1:] if argv is None else argv), TASKS, USAGE, "TASK")


if __name__ == "__main__":
  sys.exit(main())
