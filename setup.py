"""fot_jax: the Focused Transformer (FoT / LongLLaMA) in JAX."""

from setuptools import find_packages, setup

JAX_VERSION = "0.10.2"

CORE = [
    f"jax=={JAX_VERSION}",
    f"jaxlib=={JAX_VERSION}",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "seqio==0.0.20",
    "tensorflow-datasets==4.9.10",
    "ml_collections==1.1.0",
    "clu",
    "tensorboard",
    "msgpack",
    "ml_dtypes",
    "numpy",
    "safetensors",
    "sentencepiece",
    "tokenizers",  # Hugging Face tokenizers as data vocabularies (data.vocab = "hf:...")
    "fsspec",  # one filesystem layer for caches and corpora: local, gs://, memory://
    "pyarrow",  # The Stack's parquet files
    "importlib_resources",
    "absl-py",
    "matplotlib",
]

EXTRAS = {
    "test": ["pytest", "pytest-timeout", "torch==2.13.0", "transformers", "zstandard"],
    "tpu": [f"jax[tpu]=={JAX_VERSION}"],
    # corpora and caches beyond local files: RedPajama's .zst files, gs:// paths
    "data": ["zstandard", "gcsfs"],
}

setup(
    name="fot_jax",
    version="0.1.0",
    description="Focused Transformer (FoT) memory layers and crossbatch training for LLaMA models in JAX/Flax",
    packages=find_packages(include=["fot_jax", "fot_jax.*", "launch", "launch.*"]),
    package_data={"fot_jax.data": ["samples/*.jsonl"]},
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require=EXTRAS,
)
