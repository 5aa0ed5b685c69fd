#!/bin/bash
# One lent-GPU session (the device tool's 10-minute call), run from the repo
# root with the wheels of the packages the GPU image lacks in .whl/
# (ml_collections, grain, array_record, portpicker; `bash
# benchmarks/gpu_wheels.sh` downloads them, the run tool carries ".whl").
# Results go to $OUT:
#   env.txt             GPU, driver and package versions
#   closed_loop.json    experiments.closed_loop on this GPU (issue 4)
#   local_device.npz    the measured device file it wrote
#   supernet_speed.json benchmarks.supernet_speed --torch (issue 3)
#   *.log               the full console output of each step
set -u
OUT=${OUT:-runs/gpu_session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 FBNET_JAX_CACHE=/tmp/fbnet_jax_xla
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.45  # leave PyTorch room in the same process
# XLA's GPU autotuning results on disk: every measuring session of the loop
# runs in a fresh process, which would otherwise autotune the same
# convolutions again (4-20 s per network on an H100, 2026-11-27).
export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_per_fusion_autotune_cache_dir=/tmp/fbnet_jax_autotune"
# .whl/ holds wheels for several Pythons (benchmarks/gpu_wheels.sh): pip
# picks this one's from the names.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site --find-links .whl \
  ml_collections grain array_record portpicker || exit 1
export PYTHONPATH=/tmp/site:$PWD
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  nproc
  python3 -c "import jax, flax, optax, chex, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'chex', chex.__version__, 'torch', torch.__version__, jax.devices())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
t0=$(date +%s)
# 2026-11-27 on an H100: 220 networks at 4-20 s each (XLA autotunes every
# convolution while compiling) did not fit; NUM_QUERY sizes the check.
timeout "${CLOSED_LOOP_S:-420}" python3 -m experiments.closed_loop \
  --workdir=runs/gpu_closed_loop --num_query="${NUM_QUERY:-30}" \
  --config.latency.device_file=runs/gpu_closed_loop/local_device.npz \
  > "$OUT/closed_loop.log" 2>&1
echo "closed loop: rc $? after $(( $(date +%s) - t0 )) s"
cp runs/gpu_closed_loop/closed_loop.json runs/gpu_closed_loop/local_device.npz "$OUT/" 2>/dev/null
grep -E "adapted from|target .* predicted|Traceback|Error" "$OUT/closed_loop.log" | tail -8
t0=$(date +%s)
timeout "${SPEED_S:-150}" python3 -m benchmarks.supernet_speed --ops=9 \
  --batch_sizes="${SPEED_BATCHES:-256}" --repeats=10 --torch \
  --out="$OUT/supernet_speed.json" > "$OUT/supernet_speed.log" 2>&1
echo "supernet speed: rc $? after $(( $(date +%s) - t0 )) s"
grep -E '^\{|Traceback|Error' "$OUT/supernet_speed.log" | tail -6
