"""`python -m fot_jax.compile_check`: the real train step compiled for a TPU slice on this CPU host.

Needs libtpu (the `tpu` extra, installed in CI); skipped with that reason where it is missing. The parser and
topology-name tests run everywhere.
"""

import json
import os
import subprocess
import sys

import pytest

from fot_jax.configs.experiments import tiny_fot
from fot_jax import compile_check
from fot_jax.train import compile_report, hlo_analysis, tpu_specs
from fot_jax.train.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _has_libtpu() -> bool:
  try:
    import libtpu  # noqa: F401
  except ImportError:
    return False
  return True


needs_libtpu = pytest.mark.skipif(not _has_libtpu(), reason="libtpu not installed: pip install -e '.[tpu]' "
                                  "(jax[tpu] at the pinned jax version) to compile for TPU on this host")


def _tiny(**model):
  c = tiny_fot.get_config()
  c.fot.d_schedule, c.fot.d = "fixed", 3
  c.data.batch_size = 8
  for key, value in model.items():
    c.model[key] = value
  return c


@needs_libtpu
def test_tiny_config_compiles_and_fits_with_splash_kernel():
  """Chunked layers elsewhere, the Pallas splash kernel in the memory layer: Mosaic-compiled for v5e, sharded
  over a (fsdp=2, tensor=2) mesh through shard_map."""
  c = _tiny(attention_impl="splash", num_kv_heads=4)
  c.mesh.shape = (1, 2, 2)
  devices = tpu_specs.topology_devices("v5e:2x2")
  typed = TrainConfig.from_config_dict(c)
  built = compile_check.build(typed, devices)
  compiled = compile_check.compile_step(built)
  assert "tpu_custom_call" in compiled.as_text()  # the Mosaic kernel is in the TPU executable
  report = compile_report.analyse(compiled, built, typed, "v5e:2x2", devices, mfu=0.4, compile_s=0.0)
  assert report.fits and report.devices == 4 and report.mesh == {"data": 1, "fsdp": 2, "tensor": 2}
  assert 0 < report.memory["total"] < report.hbm_bytes
  assert report.analytic_flops > 0 and report.compiled_flops > 0
  assert report.collectives["all-gather"]["count"] > 0  # FSDP gathers its parameters
  text = compile_report.format_report(report)
  assert "FITS" in text and "tokens/s per chip" in text and "of which crossbatch attention" in text
  # The JSON form: the window's keys/values cross devices by collective-permutes inside the crossbatch scope.
  report_json = json.loads(json.dumps(report.to_json()))
  assert report_json["fits"] is True and report_json["memory_per_device_bytes"] == report.memory["total"]
  collectives = report_json["collectives"]
  assert collectives["total_bytes"] == sum(collectives[kind] for kind in hlo_analysis.COLLECTIVES)
  assert 0 < collectives["crossbatch_bytes"] <= collectives["total_bytes"]
  assert collectives["collective-permute"] > 0 and report.window == 3
  times = report_json["step_time_s"]
  assert times["compute"] > 0 and times["communication"] > 0
  expected = report.tokens_per_step / max(times["compute"], times["communication"]) / report.chips
  assert abs(report_json["tokens_per_s_per_chip"] - expected) <= 1e-6 * expected


@needs_libtpu
def test_oversized_config_fails_the_fit_check():
  """A 6B-parameter two-layer model with AdamW on 4 v5e chips: the CLI exits 3 naming the biggest buffers."""
  args = [sys.executable, "-m", "fot_jax.compile_check", "--config=configs/experiments/tiny_fot.py",
          "--topology=v5e:2x2", "--config.model.hidden_size=16384", "--config.model.num_heads=16",
          "--config.model.num_kv_heads=16", "--config.model.intermediate_size=44032",
          "--config.model.num_layers=2", "--config.model.mem_layers=(1,)"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == compile_check.EXIT_DOES_NOT_FIT, proc.stderr[-3000:]
  assert "does not fit" in proc.stderr
  assert "largest arguments per device" in proc.stderr and "opt_state" in proc.stderr
  assert "largest tensors of the step" in proc.stderr


def test_unknown_topology_is_a_clear_error():
  with pytest.raises(ValueError, match="--topology"):
    tpu_specs.resolve_topology("v9x-12")
  assert tpu_specs.resolve_topology("v5p-64") == "v5p:2x4x4"
  assert tpu_specs.resolve_topology("v5e:4x4") == "v5e:4x4"
  assert tpu_specs.spec_for_kind("TPU v5 lite").generation == "v5e"
  assert tpu_specs.spec_for_kind("TPU v5").generation == "v5p"


HLO = """\
HloModule m

%cond (p: (s32[], f32[8])) -> pred[] {
  %p = (s32[], f32[8]) parameter(0)
  %g = s32[]{:T(128)} get-tuple-element(%p), index=0
  %c = s32[]{:T(128)} constant(23)
  ROOT %lt = pred[] compare(%g, %c), direction=LT
}

%body (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %ag = bf16[4,1024]{1,0} all-gather(%x), channel_id=1, dimensions={0}
  %ars = (f32[256]{0}, f32[1024]{0}) all-reduce-start(%y, %y2), channel_id=2
  %w2 = (s32[], f32[8]) while(%t2), condition=%cond2, body=%body2, backend_config={"known_trip_count":{"n":"3"}}
  ROOT %t = (s32[], f32[8]) tuple(%i, %z)
}

%cond2 (p: (s32[], f32[8])) -> pred[] {
  ROOT %lt = pred[] custom-call(%p), custom_call_target="opaque"
}

%body2 (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %cps = (f32[64]{0}, f32[64]{0}, u32[]{:S(2)}, u32[]{:S(2)}) collective-permute-start(%v), channel_id=4
  ROOT %t = (s32[], f32[8]) tuple(%i, %z)
}

%cond3 (p: (s32[], f32[8])) -> pred[] {
  %p = (s32[], f32[8]) parameter(0)
  %g = s32[]{:T(128)} get-tuple-element(%p), index=0
  %c = s32[]{:T(128)} constant(10)
  ROOT %gt = pred[] compare(%c, %g), direction=GT
}

%body3 (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %f = f32[16]{0} fusion(%a), kind=kOutput, calls=%all-reduce-scatter.1
  ROOT %t = (s32[], f32[8]) tuple(%i, %z)
}

%all-reduce-scatter.1 (input: f32[64]) -> f32[16] {
  %input = f32[64]{0} parameter(0)
  %ar = f32[64]{0} all-reduce(%input), channel_id=5, to_apply=%add
  ROOT %ds = f32[16]{0} dynamic-slice(%ar, %o), dynamic_slice_sizes={16}
}

ENTRY %main (a: f32[8]) -> f32[8] {
  %zero = s32[]{:T(128)} constant(0)
  %start = s32[]{:T(128)} copy(%zero)
  %init = (s32[], f32[8]) tuple(%start, /*index=1*/%a)
  %w = (s32[], f32[8]) while(%init), condition=%cond, body=%body, metadata={op_name="jit(f)/while"}
  %four = s32[]{:T(128)} constant(4)
  %init3 = (s32[], f32[8]) tuple(%four, %a)
  %w3 = (s32[], f32[8]) while(%init3), condition=%cond3, body=%body3
  %ar = f32[16]{0} all-reduce(%a), channel_id=3, to_apply=%add
  ROOT %r = f32[8] get-tuple-element(%w), index=1
}
"""


def test_while_loop_trip_counts():
  """From the condition's bound minus the counter's traced start, or XLA's known_trip_count."""
  loops = {loop.body: loop for loop in hlo_analysis.while_loops(HLO)}
  assert (loops["body"].trips, loops["body"].method, loops["body"].op_name) == (23, "condition", "jit(f)/while")
  assert (loops["body2"].trips, loops["body2"].method) == (3, "known_trip_count")
  assert (loops["body3"].trips, loops["body3"].method) == (6, "condition")  # 10 > i from i = 4


def test_collective_stats_counts_loop_iterations():
  stats = hlo_analysis.collective_stats(HLO)
  assert stats["all-gather"] == {"count": 1, "per_step": 23, "bytes_per_step": 23 * 4 * 1024 * 2}
  # all-reduce-start of two buffers counts both; the ENTRY all-reduce once.
  assert stats["all-reduce"]["count"] == 2 and stats["all-reduce"]["per_step"] == 24
  assert stats["all-reduce"]["bytes_per_step"] == 23 * (256 + 1024) * 4 + 16 * 4
  # nested loop: 23 x 3 runs of the permute, its operand only (not the result or the u32 contexts)
  assert stats["collective-permute"] == {"count": 1, "per_step": 69, "bytes_per_step": 69 * 64 * 4}
  # TPU's all-reduce-scatter fusion is a reduce-scatter of its full operand, 6 times
  assert stats["reduce-scatter"] == {"count": 1, "per_step": 6, "bytes_per_step": 6 * 64 * 4}
