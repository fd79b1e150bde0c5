#!/usr/bin/env bash
# Feature-extraction throughput on a CUDA GPU with RoBERTa-base-sized and CLIP ViT-B/32-sized RANDOM
# models (no download): texts/s, tokens/s, images/s, peak GPU memory. One command, a few minutes:
#
#   bash benchmarks/gpu_features.sh [OUT_DIR]        # default OUT_DIR: $OUT, else /tmp/blairclip-gpu-features
#
# Needs python3 with torch (CUDA), transformers, tokenizers, pillow, numpy, pandas, scikit-learn, tqdm.
# Extra arguments after OUT_DIR go to benchmarks/gpu_features.py (e.g. --texts 4096 --no-fp16).
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${OUT:-/tmp/blairclip-gpu-features}"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then out_dir="$1"; shift; fi
mkdir -p "$out_dir"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
timeout 290 "$PY" benchmarks/gpu_features.py --device cuda --out "$out_dir/gpu_features.json" "$@" \
  2>&1 | grep -v -E "Loading weights|Writing model shards" | tee "$out_dir/gpu_features.log"
