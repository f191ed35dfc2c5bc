"""The subsets of file mixtures whose files the user points to (`config.data.subset_paths.<name>`).

Plain data with no heavy imports, so that reading a config (configs/base.py, the config checks) does not load
seqio or TensorFlow; fot_jax.data.tasks turns the subsets into seqio tasks.
"""

from __future__ import annotations

import dataclasses

SUBSET_PATHS_FIELD = "config.data.subset_paths"


@dataclasses.dataclass(frozen=True)
class Subset:
  """A named subset of a mixture whose files the user points to (config.data.subset_paths.<name>)."""
  name: str
  kind: str  # a corpus_files kind: 'redpajama' (JSONL, .gz, .zst) or 'stack' (parquet or JSONL code files)
  rate: float
  min_length: int = 0  # tokens


# The paper's LongLLaMA fine-tuning mixture (appendix, "LLaMA fine-tuning dataset"): sampling proportion and
# minimum document length in tokens. Every subset is RedPajama's except python, The Stack's Python files with
# the files of one subdirectory concatenated (corpus_files.stack_documents).
LONGLLAMA_SUBSETS = (
    Subset("arxiv", "redpajama", 0.25),
    Subset("python", "stack", 0.25, 4096),
    Subset("book", "redpajama", 0.10),
    Subset("common_crawl", "redpajama", 0.29),
    Subset("c4", "redpajama", 0.05, 1024),
    Subset("github", "redpajama", 0.02, 2048),
    Subset("stackexchange", "redpajama", 0.02, 1024),
    Subset("wikipedia", "redpajama", 0.02, 1024),
)

# mixture name (as in 'mixture:<name>') -> its subsets
SUBSET_MIXTURES = {"longllama": LONGLLAMA_SUBSETS}
