"""Base training config of fot_jax: every field the trainer reads, nested by concern.

Experiment files start from `get_config()` and override what differs. The entry point converts the result once
into the typed fot_jax.train.config.TrainConfig (one frozen section per concern: model -> ModelConfig, fot ->
CrossbatchConfig, data -> DataConfig, ...), which checks every value before anything compiles; a key this file
lacks is refused there, so a new field is added here and in its section.
"""

from __future__ import annotations

import ml_collections

from fot_jax.data.subsets import LONGLLAMA_SUBSETS
from fot_jax.model.config import PRESETS, ModelConfig


def model_config(preset: str | None = None, **overrides) -> ml_collections.ConfigDict:
  """A ConfigDict holding exactly the ModelConfig fields (a preset's values, then overrides)."""
  fields = ModelConfig().to_dict() if preset is None else ModelConfig(**PRESETS[preset]).to_dict()
  fields.update(overrides)
  fields["mem_layers"] = tuple(fields["mem_layers"])
  return ml_collections.ConfigDict(fields)


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_steps = 1000
  # Path of a workdir holding a checkpoint (training or `python -m fot_jax.convert` output): params only.
  c.init_from = ""

  c.model = model_config("tiny")

  # FoT crossbatch: which earlier chunks each memory layer also attends to. The plan is built for the micro-batch size (batch_size / micro_batches).
  c.fot = ml_collections.ConfigDict()
  c.fot.k = 1  # entries per document stream (k-packing)
  c.fot.plan = "released"  # "released": the released stepping formula with d; "mix": per-position mix
  c.fot.stepping = True  # released plan: positives-stepping when k > 1
  c.fot.mix = ""  # plan="mix": 'positives:negatives' per chunk position, e.g. '0:0,1:2,2:5,3:4'
  c.fot.mix_after = ""  # plan="mix": if set, replaces fot.mix from fot.switch_step on (e.g. negatives after warm-up)
  c.fot.d_schedule = "fixed"  # "fixed" (d) | "switch" (d, then d_after from switch_step) | "sample" (d_choices)
  c.fot.d = 0
  c.fot.d_after = 0
  c.fot.switch_step = 0
  c.fot.d_choices = ()

  # Data: an offline corpus tokenised by a SentencePiece model (or synthetic streams for quick tests).
  c.data = ml_collections.ConfigDict()
  # A fot_jax.data.pipeline name: an offline corpus ("stdlib", "shakespeare"), "dict_lookup", "mixture:offline",
  # "jsonl:<glob>", "instruct:<glob>" (instruction/chat JSONL, loss on the answers), or a registered seqio task.
  c.data.task = "stdlib"
  # 'byte', a SentencePiece path, '<corpus>_sp<size>' (trained on demand), or 'hf:<dir or tokenizer.json>'
  c.data.vocab = "stdlib_sp2000"
  c.data.data_dir = ""  # fot_jax data dir ("" -> $FOT_JAX_DATA_DIR or ~/.cache/fot_jax)
  c.data.batch_size = 16  # B: global entries per step
  c.data.seq_len = 64  # L: local context
  c.data.micro_batches = 1  # M: gradient accumulation; crossbatch mixes entries within a micro-batch only
  c.data.shuffle = True
  # True: each document starts a new group of fot.k chunks (padding fills the rest), so positives never hold
  # another document: for short synthetic documents (passkey prompts), where packing would mix keys
  c.data.align_documents = False
  # data.task = "mixture:longllama": a path or glob (local or any fsspec URL, e.g. gs://) per subset of the
  # user's copy of the data: RedPajama JSONL (plain, .gz, .zst); python: The Stack's parquet or JSONL files.
  c.data.subset_paths = ml_collections.ConfigDict({s.name: "" for s in LONGLLAMA_SUBSETS})
  c.data.cache_build_processes = 1  # local processes that build a missing token cache (one shard each)
  c.data.stream_workers = 0  # 'stream:<kind>:<glob>': threads tokenizing documents ahead, in order (0: inline)

  c.optim = ml_collections.ConfigDict()
  c.optim.optimizer = "adamw"  # "adamw" | "adafactor"
  c.optim.learning_rate = 3e-3
  c.optim.schedule = "cosine"  # "cosine" (warmup + cosine) | "rsqrt" (warmup + inverse sqrt) | "constant"
  c.optim.warmup_steps = 20
  c.optim.min_lr_ratio = 0.1  # cosine: final lr = learning_rate * min_lr_ratio
  c.optim.b1 = 0.9
  c.optim.b2 = 0.95
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.0
  c.optim.decay_embeddings = False  # weight decay mask: kernels always, norms never, embeddings if True
  c.optim.grad_clip = 1.0  # global-norm clipping; 0 disables

  c.mesh = ml_collections.ConfigDict()
  c.mesh.shape = (1, -1, 1)  # (data, fsdp, tensor); one -1 takes the remaining devices
  c.mesh.scan_layers = True
  c.mesh.remat = "none"  # a name from fot_jax.model.transformer.REMAT_POLICIES

  # Multi-host: jax.distributed.initialize (TPU: automatic when num_processes == 0 and on a pod).
  c.distributed = ml_collections.ConfigDict()
  c.distributed.coordinator_address = ""  # "host:port"; "" -> no explicit initialisation
  c.distributed.num_processes = 1
  c.distributed.process_id = 0
  c.distributed.initialization_timeout = 300  # seconds; the start-up barrier names the missing host

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 100
  c.checkpoint.keep = 3
  c.checkpoint.async_save = True
  # >0: every N steps process 0 also writes a Hugging Face folder (as `python -m fot_jax.export`, model card
  # included) to <workdir>/hf/step_<N>, in a background thread; a failed export is logged, training goes on.
  c.checkpoint.export_hf_every = 0

  c.log = ml_collections.ConfigDict()
  c.log.every_steps = 10
  c.log.tensorboard = True
  c.log.device_peak_flops = 0.0  # >0 overrides the peak table (FLOP/s per device) used for MFU

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 100  # 0 disables periodic eval
  c.eval.num_batches = 4
  c.eval.batch_size = 16
  c.eval.k = 1
  c.eval.d = 0  # eval crossbatch: released plan with its own k and d
  c.eval.stepping = True
  return c


def cpu_experiment_config(*, num_steps: int, learning_rate: float, warmup_steps: int, weight_decay: float,
                          checkpoint_every: int) -> ml_collections.ConfigDict:
  """get_config() for the CPU-scale reproduction experiments (docs/RESULTS.md): seed 0, a log line every 25
  steps without TensorBoard, no periodic eval; the step budget, optimiser and checkpoint interval as given."""
  c = get_config()
  c.seed = 0
  c.num_steps = num_steps
  c.optim.learning_rate = learning_rate
  c.optim.warmup_steps = warmup_steps
  c.optim.weight_decay = weight_decay
  c.checkpoint.every_steps = checkpoint_every
  c.log.every_steps = 25
  c.log.tensorboard = False
  c.eval.every_steps = 0
  return c
