"""`python -m fot_jax.evaluate TASK [flags]`: dispatches to one evaluation module per task.

Each task module exposes `main(argv) -> int`. Add a task by adding a line to TASKS.
"""

from __future__ import annotations

import importlib
import sys

TASKS = {
    "logprobs": "fot_jax.eval.logprobs",  # per-token log-probabilities with memory inference
}


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] not in TASKS:
    found = argv[0] if argv else None
    print(f"usage: python -m fot_jax.evaluate TASK [flags]; TASK one of {sorted(TASKS)} (found {found!r})",
          file=sys.stderr)
    return 2
  return importlib.import_module(TASKS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
  sys.exit(main())
