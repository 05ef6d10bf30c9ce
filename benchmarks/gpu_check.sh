#!/usr/bin/env bash
# The check for a lent GPU machine (one GPU, JAX + TensorBoard, no TensorFlow, no package
# index): install the wheels carried in wheels/, then train the published 512 model through
# flexunet-train on JAX with data.loader=py_dataset, float32 and mixed_float16, batch 2 and 8,
# and print training images/s, the input pipeline's images/s, peak GPU memory and the rate of
# a bare Keras loop on random tensors (the overhead ratio). About 8 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh   # a 64x64 3-level model: checks it on a CPU
#
# Prepare wheels/ beforehand on a machine with a package index (docs/distributed.md, "The GPU
# check"); the script installs them into a virtual environment that sees the system's JAX.
# Environment: PYTHON (default python3), WHEELS (default wheels/), VENV (default
# /tmp/flexunet-gpu), STEPS (timed steps per run), GPU_CHECK_TINY, GPU_CHECK_TIMEOUT (s per run,
# default 70: eight runs stay under 10 minutes; a run over it is reported, not waited for).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-wheels}
VENV=${VENV:-/tmp/flexunet-gpu}

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv --system-site-packages "$VENV"
fi
if ! "$VENV/bin/python" -c "import flexunet, keras, hydra, albumentations" 2>/dev/null; then
  if [[ ! -d "$WHEELS" ]]; then
    echo "benchmarks/gpu_check.sh: no $WHEELS/ to install from; prepare it first (docs/distributed.md)" >&2
    exit 2
  fi
  # --no-deps for the project: its TensorFlow requirement is the one thing this machine skips
  "$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS" --no-deps "$WHEELS"/flexunet-*.whl
  "$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS" \
    keras hydra-core omegaconf albumentations pillow matplotlib tqdm scipy tensorboard
fi
exec "$VENV/bin/python" benchmarks/gpu_check.py "$@"
