#!/usr/bin/env bash
# Training images/s of the published 512 FlexUNet on one GPU: float32 vs mixed precision,
# with and without XLA, batch 2 and 8, on random tensors (under 8 minutes on an H100).
#
#   bash benchmarks/gpu.sh                 # the published model (conf/model/flexunet.yaml)
#   SMOKE=1 bash benchmarks/gpu.sh         # 64x64, 3 levels: checks the script on a CPU
#   BATCHES="2" STEPS=10 TIMEOUT=200 bash benchmarks/gpu.sh   # TIMEOUT: s per precision/XLA
#
# Needs only TensorFlow and Keras 3 (no flexunet install: src/ goes on PYTHONPATH). Installs
# nothing: PYTHON (default: the repo's .venv if present, else python3) must import both.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import tensorflow, keras, numpy; assert int(keras.__version__.split('.')[0]) >= 3" 2>/dev/null; then
  cat >&2 <<MSG
benchmarks/gpu.sh: '$PYTHON' cannot import tensorflow and keras>=3, and this script installs
nothing. Use a Python that has them (PYTHON=/path/to/python bash benchmarks/gpu.sh), e.g. the
NVIDIA TensorFlow container, or: python3 -m venv /tmp/tf && /tmp/tf/bin/pip install
'tensorflow[and-cuda]>=2.16,<2.22' && PYTHON=/tmp/tf/bin/python bash benchmarks/gpu.sh
MSG
  exit 2
fi

"$PYTHON" - <<'PY'
import os, platform, subprocess
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print(f"TensorFlow {tf.__version__}; GPUs: {[g.name for g in gpus] or 'none'}; {platform.node()}")
if gpus:
    try:
        print(subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True).stdout.strip())
    except OSError:
        pass
elif not os.environ.get("SMOKE"):
    raise SystemExit("benchmarks/gpu.sh: no GPU visible to TensorFlow (check nvidia-smi and the "
                     "CUDA libraries); SMOKE=1 runs the tiny CPU check instead")
PY

args=(--batches ${BATCHES:-2 8} --steps "${STEPS:-20}" --timeout "${TIMEOUT:-115}")
if [[ -n "${SMOKE:-}" ]]; then args+=(--smoke); fi
exec "$PYTHON" benchmarks/gpu_speed.py "${args[@]}"
