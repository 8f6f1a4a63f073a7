#!/usr/bin/env bash
# Runs on a lent GPU machine, from the repository root, with .gpu/ and .gl/ carried (bench/gpu-prepare.sh):
# the Vulkan loader unpacked, Node unpacked, then bench/webgpu.ts (dispatches, host time, per-kernel GPU
# time, the step against PyTorch fp32 and TF32) within 7 minutes, its output kept in $OUT/webgpu.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' | tee -a "$OUT/gpu.txt"
xz -dc .gpu/node.xz > .gpu/node && chmod +x .gpu/node
cd .gpu && timeout 420 ./node --expose-gc webgpu.mjs 2>&1 | tee "$OUT/webgpu.txt"
