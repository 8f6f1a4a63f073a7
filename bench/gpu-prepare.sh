#!/usr/bin/env bash
# Prepares what the GPU machine needs to run bench/gpu.ts (it has no Node.js and reaches no registry):
# .gpu/ (node binary, xz; the bench bundled with esbuild; Dawn's webgpu addon; train_torch.py) and
# .gl/ (Vulkan/GL loader debs). Both folders are git-ignored and travel with the device tool's `carry`.
# Then run there (see bench/RESULTS.md for the command used).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu/node_modules/webgpu/dist/linux-x64 .gl
[ -f .gpu/node.xz ] || xz -T2 -6 -c "$(command -v node)" > .gpu/node.xz
npx esbuild bench/gpu.ts --bundle --platform=node --format=esm --target=node20 --outfile=.gpu/bench.mjs --log-level=warning \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu --external:@tensorflow/tfjs-backend-wasm \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json .gpu/node_modules/webgpu/
cp node_modules/webgpu/dist/linux-x64/dawn.node .gpu/node_modules/webgpu/dist/linux-x64/
cp bench/train_torch.py .gpu/
if [ -z "$(ls .gl/*.deb 2>/dev/null)" ]; then
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .gpu .gl
