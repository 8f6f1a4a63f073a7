#!/usr/bin/env bash
# Prepares what a lent GPU machine needs for one call (it has no Node.js and reaches no registry):
# .gpu/ (the node binary, xz; bench/webgpu.ts, the compiled step's benchmark, and bench/gpu.ts, the
# tfjs WebGPU one, bundled with esbuild; Dawn's webgpu addon; the PyTorch references twin_torch.py and
# train_torch.py; gpu-run.sh) and .gl/ (Vulkan/GL loader debs). Both folders are git-ignored and travel
# with the device tool's `carry`: run there `bash .gpu/gpu-run.sh` (recipe: ../shared/reference/gpu-webgpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu/node_modules/webgpu/dist/linux-x64 .gl
[ -f .gpu/node.xz ] || xz -T2 -6 -c "$(command -v node)" > .gpu/node.xz
for entry in webgpu gpu; do
  npx esbuild "bench/$entry.ts" --bundle --platform=node --format=esm --target=node20 --outfile=".gpu/$entry.mjs" --log-level=warning \
    --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu --external:@tensorflow/tfjs-backend-wasm \
    --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);"
done
cp node_modules/webgpu/index.js node_modules/webgpu/package.json .gpu/node_modules/webgpu/
cp node_modules/webgpu/dist/linux-x64/dawn.node .gpu/node_modules/webgpu/dist/linux-x64/
cp bench/twin_torch.py bench/train_torch.py bench/torch_nets.py bench/gpu-run.sh .gpu/
if [ -z "$(ls .gl/*.deb 2>/dev/null)" ]; then
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .gpu .gl
