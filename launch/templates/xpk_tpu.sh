#!/bin/bash
# TEMPLATE, NOT EXERCISED in this repository's tests or CI (no GKE cluster here). Adapt cluster, project,
# zone, TPU type, image and paths before use. XPK: https://github.com/AI-Hypercomputer/xpk
#
# fot_jax on TPU slices in GKE through XPK. XPK builds an image from the current directory on top of a base
# image, and runs the same command on every host of every slice; jax.distributed.initialize() auto-detects
# the topology there (leave config.distributed.coordinator_address empty).
#   launch/templates/xpk_tpu.sh configs/experiments/longllama_3b_fot.py gs://bucket/runs/3b [--config.k=v ...]
set -euo pipefail
CONFIG=${1:?config file}
WORKDIR=${2:?gs:// workdir}
shift 2

CLUSTER=${CLUSTER:-fot-cluster}
PROJECT=${PROJECT:-my-project}
ZONE=${ZONE:-us-east5-b}
TPU_TYPE=${TPU_TYPE:-v5p-128}
NUM_SLICES=${NUM_SLICES:-1}
WORKLOAD=${WORKLOAD:-fot-$(date +%m%d-%H%M)}

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "refusing to launch from a dirty git tree (the image is built from this directory)" >&2; exit 2
fi
COMMIT=$(git rev-parse HEAD)

# printf %q quotes each override for the command string XPK runs in the container.
TRAIN=$(printf '%q ' python -m fot_jax.train --config="${CONFIG}" --workdir="${WORKDIR}" "$@")

xpk workload create \
  --cluster "${CLUSTER}" --project "${PROJECT}" --zone "${ZONE}" \
  --workload "${WORKLOAD}" --tpu-type "${TPU_TYPE}" --num-slices "${NUM_SLICES}" \
  --base-docker-image python:3.11-slim \
  --command "echo commit ${COMMIT} && pip install -q -e '.[tpu]' && ${TRAIN}"
# Preemption: XPK restarts the workload (--max-restarts); the trainer resumes from the latest checkpoint.
