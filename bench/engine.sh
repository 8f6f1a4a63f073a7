#!/usr/bin/env bash
# `npm run bench:engine`: installs Snakemake (Debian) for the comparison if missing, then runs the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v snakemake >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq snakemake) >&2 || echo "could not install snakemake; its figure will be missing" >&2
fi
exec node --import tsx bench/engine.ts
