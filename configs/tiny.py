"""The README's main job (issue 4's `configs/tiny.py`): the same run as configs/experiments/tiny_fot.py."""

from configs.experiments.tiny_fot import get_config  # noqa: F401
