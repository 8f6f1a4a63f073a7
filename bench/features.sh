#!/usr/bin/env bash
# `npm run bench:features`: installs Debian's torchaudio for the reference if missing, then runs the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torchaudio' 2>/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torchaudio) >&2
fi
exec node --import tsx bench/features.ts
