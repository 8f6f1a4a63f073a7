#!/usr/bin/env bash
# Rebuilds logmel_kernel.wasm from logmel_kernel.c (needs Debian's clang and lld). The .wasm is
# committed, so neither installing nor testing the project needs a C toolchain.
set -euo pipefail
cd "$(dirname "$0")"
clang --target=wasm32 -O3 -msimd128 -ffast-math -fno-math-errno -fno-builtin -nostdlib \
  -Wl,--no-entry -Wl,--import-memory -Wl,--allow-undefined -Wl,--strip-all \
  -o logmel_kernel.wasm logmel_kernel.c
# Guard: the kernel must not touch memory of its own (it lives in PFFFT's memory).
if wasm-objdump -x logmel_kernel.wasm | grep -qE '^Data\[' || wasm-objdump -d logmel_kernel.wasm | grep -q 'global\.'; then
  echo "logmel_kernel.wasm has a data segment or globals: it would clash with PFFFT's memory" >&2
  wasm-objdump -x logmel_kernel.wasm >&2
  exit 1
fi
echo "built $(wc -c < logmel_kernel.wasm) bytes"
