"""The README's main job under its short name `configs/tiny.py`: the same run as configs/experiments/tiny_fot.py."""

from fot_jax.configs.experiments.tiny_fot import get_config  # noqa: F401
