#!/usr/bin/env bash
# `npm run bench:train`: installs Debian's python3-torch for the reference if missing, then runs the CPU benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch) >&2
fi
exec node --import tsx bench/train.ts
