"""What a run needs before its first step: distributed start, a writable workdir, the sharded state layout, the
data batchers, and the jitted train step (the trainer and compile_check build them the same way)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fot_jax.model.config import ModelConfig
from fot_jax.model.modules import FoTLlama
from fot_jax.train import step as step_lib
from fot_jax.train.config import DistributedConfig, TrainConfig
from fot_jax.train.errors import TrainingError
from fot_jax.train.sharding import batch_sharding, replicated, tree_shardings

BATCH_KEYS = ("inputs", "targets", "loss_mask", "input_mask")


def initialize_distributed(dist: DistributedConfig) -> None:
  """jax.distributed.initialize: explicit coordinator (CPU/GPU), or auto-detected on TPU pods.

  num_processes == 0 with no coordinator address means "ask the platform" (TPU VMs and GKE know their peers).
  """
  if jax.distributed.is_initialized():
    return
  if not dist.coordinator_address and dist.num_processes == 0:
    jax.distributed.initialize()
    return
  if not dist.coordinator_address or dist.num_processes <= 1:
    return
  try:
    jax.distributed.initialize(coordinator_address=dist.coordinator_address, num_processes=dist.num_processes,
                               process_id=dist.process_id,
                               initialization_timeout=int(dist.initialization_timeout))
  except Exception as e:  # noqa: BLE001
    raise TrainingError(f"jax.distributed.initialize: process {dist.process_id} of {dist.num_processes} could not "
                        f"join the coordinator at {dist.coordinator_address} within "
                        f"{dist.initialization_timeout}s ({e}); every process must start with the same "
                        f"coordinator address and a distinct process_id in [0, {dist.num_processes})") from e


def check_workdir(workdir: str) -> None:
  """Fails early, with the path, if the workdir cannot be written."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_probe_{os.getpid()}_{jax.process_index()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise TrainingError(f"--workdir {workdir!r} is not writable: {e}") from e


def remove_if_empty(path: str) -> None:
  """Removes the directory tree at path if it holds no files (only empty directories)."""
  if not os.path.isdir(path) or any(files for _, _, files in os.walk(path)):
    return
  for root, _, _ in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
    os.rmdir(root)


def _fit(sharding: NamedSharding, shape: tuple[int, ...], mesh: Mesh) -> NamedSharding:
  """A sharding valid for `shape`: specs longer than the rank or not dividing a dimension fall back to None."""
  spec = tuple(sharding.spec)
  if len(spec) > len(shape):
    return replicated(mesh)
  out = []
  for dim, entry in zip(shape, spec + (None,) * (len(shape) - len(spec))):
    names = (entry,) if isinstance(entry, str) else tuple(entry or ())
    size = int(np.prod([mesh.shape[n] for n in names])) if names else 1
    out.append(entry if dim % size == 0 else None)
  return NamedSharding(mesh, P(*out))


def state_layout(model: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh) -> tuple[Any, Any]:
  """(abstract train state, its shardings): params by the logical rules, optimizer state like its params."""
  abstract = jax.eval_shape(lambda: step_lib.init_state(FoTLlama(model, seed=jax.random.key(0)).params(), optimizer))
  param_sh = tree_shardings(abstract["params"], FoTLlama.abstract(model).logical_axes(), mesh)
  is_sh = lambda x: isinstance(x, NamedSharding)
  opt_sh = optax.tree_map_params(optimizer, lambda _, s: s, abstract["opt_state"], param_sh,
                                 transform_non_params=lambda _: replicated(mesh), is_leaf=is_sh)
  opt_sh = jax.tree.map(lambda a, s: _fit(s, a.shape, mesh), abstract["opt_state"], opt_sh)
  return abstract, {"params": param_sh, "opt_state": opt_sh, "step": replicated(mesh)}


@dataclasses.dataclass
class DataBundle:
  train: Any  # DocumentBatcher over this process's rows
  make_eval: Any  # () -> iterator of eval batches (fresh each evaluation), or None
  sentencepiece_model: str  # "" unless a SentencePiece vocabulary is used
  hf_tokenizer: str = ""  # the tokenizer.json of a Hugging Face vocabulary ('hf:<path>'), else ""


def build_data(config: TrainConfig, mesh: Mesh) -> DataBundle:
  """Vocabulary + train/validation batchers for this process's rows of the batch sharding."""
  from fot_jax.data import multihost, pipeline
  from fot_jax.data.vocab import VocabConfig, build_vocabulary
  d, k, vocab_size = config.data, config.fot.k, config.model.vocab_size
  data_dir = d.data_dir or None
  vocab = build_vocabulary(VocabConfig(name=d.vocab, data_dir=data_dir))
  sp_path = getattr(vocab, "sentencepiece_model_file", "") or ""
  sharding = batch_sharding(mesh)
  pidx, pcount = multihost.process_split(sharding, d.batch_size, d.seq_len, k)
  train = pipeline.make_batcher(d.task, "train", vocab, d.batch_size, d.seq_len, k=k,
                                micro_batches=d.micro_batches, seed=config.seed, process_index=pidx,
                                process_count=pcount, data_dir=data_dir, shuffle=d.shuffle,
                                model_vocab_size=vocab_size, align_documents=d.align_documents,
                                subset_paths=d.subset_path_map, cache_build_processes=d.cache_build_processes,
                                stream_workers=d.stream_workers)
  make_eval = _eval_batches(config, vocab, sharding) if config.eval.every_steps else None
  if make_eval is not None:
    make_eval()  # fail now, not at the first evaluation, if the split cannot be batched
  return DataBundle(train, make_eval, sp_path, getattr(vocab, "tokenizer_file", "") or "")


def _eval_batches(config: TrainConfig, vocab, sharding: NamedSharding):
  """() -> a fresh iterator over this process's rows of the validation batches, for each evaluation."""
  from fot_jax.data import multihost, pipeline
  d, e = config.data, config.eval
  data_dir, vocab_size = d.data_dir or None, config.model.vocab_size
  epidx, epcount = multihost.process_split(sharding, e.batch_size, d.seq_len, e.k)

  def make_eval():
    batcher = pipeline.make_batcher(d.task, "validation", vocab, e.batch_size, d.seq_len, k=e.k, seed=config.seed,
                                    process_index=epidx, process_count=epcount, data_dir=data_dir,
                                    shuffle=False, model_vocab_size=vocab_size,
                                    align_documents=d.align_documents, subset_paths=d.subset_path_map,
                                    cache_build_processes=d.cache_build_processes, stream_workers=d.stream_workers)
    return (batcher.next_batch() for _ in range(e.num_batches))
  return make_eval


def global_array(mesh_sharding: NamedSharding, value: np.ndarray, global_shape: tuple[int, ...]) -> jax.Array:
  return jax.make_array_from_process_local_data(mesh_sharding, np.asarray(value), global_shape)


def plan_array(plan, mesh: Mesh) -> jax.Array:
  """The plan's runtime mask visible [B_micro, W], replicated (its window W is the compiled shape)."""
  return global_array(replicated(mesh), plan.visible, plan.visible.shape)


def jit_train_step(config: TrainConfig, mesh: Mesh, optimizer, schedule, shardings):
  """The jitted train step: state/batch shardings, donation of the state; compiles once per distinct window W."""
  micro, micro_size = config.data.micro_batches, config.data.micro_size
  sharding = batch_sharding(mesh)
  batch_axes = int(np.prod([mesh.shape[a] for a in ("data", "fsdp")]))
  micro_sharding = sharding if micro_size % batch_axes == 0 and micro > 1 else None
  activations = step_lib.activation_sharding_for(mesh, micro_size)
  train_step = step_lib.make_train_step(config.model, optimizer, schedule, micro, config.mesh.scan_layers,
                                        config.mesh.remat, micro_sharding, activations)
  batch_sh = {k: sharding for k in BATCH_KEYS}
  rep = replicated(mesh)
  return jax.jit(train_step, in_shardings=(shardings, batch_sh, rep), out_shardings=(shardings, rep),
                 donate_argnums=0)


def jit_eval_step(config: TrainConfig, mesh: Mesh, shardings):
  """The jitted evaluation step: (params, batch, visible) -> summed loss, accuracy and token count."""
  batch_sh = {k: batch_sharding(mesh) for k in BATCH_KEYS}
  rep = replicated(mesh)
  return jax.jit(step_lib.make_eval_step(config.model, config.mesh.scan_layers,
                                         step_lib.activation_sharding_for(mesh, config.eval.batch_size)),
                 in_shardings=(shardings["params"], batch_sh, rep), out_shardings=rep)
