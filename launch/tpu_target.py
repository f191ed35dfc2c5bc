"""The TPU launcher's target and reports: which TPU VM (or queued resource) and how to reach it, and the exit
marks every worker prints, read back into a per-worker report (fot_jax.launch.tpu describes the whole launcher).
"""

from __future__ import annotations

import dataclasses
import re

EXIT_MARK = "fot_jax-exit"
COMMIT_MARK = "fot_jax-commit"
COMMIT_MISMATCH_RC = 97
# Trusted shell fragment (no user input): this worker's index from the TPU VM metadata, else the hostname.
# FOT_JAX_WORKER, when set, wins (tests simulate workers with it).
WORKER_ID = ("W=${FOT_JAX_WORKER:-}; [ -n \"$W\" ] || W=$(curl -s -m 5 -H Metadata-Flavor:Google "
             "http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number "
             "2>/dev/null || true); W=${W:-$(hostname)}")
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
JOB_RE = re.compile(r"^[A-Za-z0-9._=,+-]+$")


class LaunchError(RuntimeError):
  """A TPU launcher step failed; the message names the command and worker."""


@dataclasses.dataclass
class WorkerStatus:
  worker: str
  rc: int | None  # None: still running / unknown
  note: str = ""


@dataclasses.dataclass
class RunReport:
  gcloud_rc: int
  workers: list[WorkerStatus]
  expected_workers: int | None

  @property
  def failed(self) -> list[WorkerStatus]:
    return [w for w in self.workers if w.rc != 0]

  @property
  def ok(self) -> bool:
    complete = self.expected_workers is None or len(self.workers) >= self.expected_workers
    return self.gcloud_rc == 0 and complete and bool(self.workers) and not self.failed

  def describe(self) -> str:
    parts = [f"worker {w.worker} " + ("is still running / unknown" if w.rc is None else f"exited with {w.rc}")
             + (f" ({w.note})" if w.note else "") for w in self.failed]
    if self.expected_workers is not None and len(self.workers) < self.expected_workers:
      parts.append(f"only {len(self.workers)} of {self.expected_workers} workers reported an exit status "
                   f"(ssh lost or worker died)")
    if not self.workers and self.expected_workers is None:
      parts.append("no worker reported an exit status")
    if self.gcloud_rc != 0 and not parts:
      parts.append(f"gcloud ssh exited with {self.gcloud_rc}")
    return "; ".join(parts) or "all workers exited 0"

  def table(self) -> str:
    rows = [f"  worker {w.worker}: " + ("running/unknown" if w.rc is None else f"exit {w.rc}")
            + (f" ({w.note})" if w.note else "")
            for w in sorted(self.workers, key=lambda w: worker_sort_key(w.worker))]
    return "\n".join(rows) if rows else "  (no worker reported)"


def worker_sort_key(worker: str):
  return (0, int(worker), "") if worker.isdigit() else (1, 0, worker)


def parse_marks(output: str, mark: str) -> list[dict[str, str]]:
  """Lines '<mark> k=v k=v ...' (possibly prefixed by gcloud) -> [{k: v}]."""
  found = []
  for line in output.splitlines():
    idx = line.find(mark + " ")
    if idx < 0:
      continue
    fields = {}
    for token in line[idx + len(mark) + 1:].split():
      k, sep, v = token.partition("=")
      if sep:
        fields[k] = v
    found.append(fields)
  return found


@dataclasses.dataclass
class Target:
  """Which TPU, where, and how to reach it (the flags every gcloud command shares)."""
  tpu: str
  zone: str
  project: str = ""
  accelerator_type: str = ""
  runtime_version: str = ""
  queued_resource: str = ""  # create through a queued resource of this name
  node_count: int = 1  # > 1: multi-slice (queued resource with nodes <tpu>-0 .. <tpu>-(n-1))
  spot: bool = False

  def __post_init__(self):
    for field in ("tpu", "queued_resource"):
      value = getattr(self, field)
      if value and not _NAME_RE.match(value):
        raise LaunchError(f"--{field} {value!r}: TPU and queued-resource names are lowercase letters, digits "
                          f"and '-', starting with a letter")
    if not self.tpu:
      raise LaunchError("--tpu is required (the TPU VM name, or the node prefix of a multi-slice resource)")
    if not self.zone:
      raise LaunchError("--zone is required (e.g. us-central2-b)")
    if self.node_count > 1 and not self.queued_resource:
      raise LaunchError("--node_count > 1 (multi-slice) needs --queued_resource")

  @property
  def multislice(self) -> bool:
    return self.node_count > 1

  def where(self) -> list[str]:
    return [f"--zone={self.zone}"] + ([f"--project={self.project}"] if self.project else [])
