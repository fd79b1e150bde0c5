#!/usr/bin/env bash
# BLaIRCLIP on a CUDA GPU, synthetic Appliances-sized catalogue (94K items, 60K users): one epoch of
# BLaIRCLIP (frozen text, one row per user) and of SASRec, full-sort evaluation of both; prints epoch
# seconds, evaluation users/s, peak GPU memory and the ratios as JSON. One command, < 5 minutes:
#
#   bash benchmarks/gpu_blairclip.sh [OUT_DIR]        # default OUT_DIR: ${OUT:-benchmarks/out}
#
# Needs python3 with torch (CUDA) and this project installed (the README's GPU install: RecBole 1.2.1, pandas<3).
# Extra arguments after OUT_DIR go to benchmarks/gpu_blairclip.py (e.g. --users 50000 --no-sasrec).
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${1:-${OUT:-benchmarks/out}}"
shift || true
mkdir -p "$out_dir"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, recbole; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'recbole', recbole.__version__)"
timeout 290 "$PY" benchmarks/gpu_blairclip.py --device cuda --root "$out_dir/gpu_blairclip_data" \
  --json "$out_dir/gpu_blairclip.json" "$@" 2>&1 | grep -v -E "Warning|warnings.warn|GradScaler" \
  | tee "$out_dir/gpu_blairclip.log"
rm -rf "$out_dir/gpu_blairclip_data"
