"""Former home of the NNX model; the modules live in fot_jax.model.modules."""

from fot_jax.model.modules import FoTLlama  # noqa: F401
