"""fot_jax: the Focused Transformer (FoT / LongLLaMA) in JAX."""

from setuptools import find_packages, setup

# configs/ and launch/ are top-level folders of the repository that install inside the package.
PACKAGE_DIR = {"fot_jax.configs": "configs", "fot_jax.launch": "launch"}
PACKAGES = find_packages(include=["fot_jax", "fot_jax.*"]) + [
    f"fot_jax.{sub}" for sub in find_packages(include=["configs", "configs.*", "launch", "launch.*"])]

# One console script per command; each `python -m` form runs the same function.
CONSOLE_SCRIPTS = [
    "fot-train = fot_jax.train.__main__:run",
    "fot-eval = fot_jax.evaluate:main",
    "fot-export = fot_jax.export:main",
    "fot-convert = fot_jax.convert.__main__:main",
    "fot-compile-check = fot_jax.compile_check:run",
    "fot-launch = fot_jax.launch.__main__:main",
]

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
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"fot_jax.data": ["samples/*.jsonl"], "fot_jax.launch": ["templates/*"]},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require=EXTRAS,
)
