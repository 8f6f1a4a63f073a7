#!/usr/bin/env bash
# npm run slurm:down — stops the cluster `npm run slurm:up` started (by its pid files; nothing else):
# cancels every job first, so no job outlives the daemons. Idempotent.
set -uo pipefail
dir=$(realpath -m "${SLURM_LOCAL_DIR:-$PWD/.slurm}")
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if running "$dir/run/slurmctld.pid"; then
  jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then scancel --full $jobs 2>/dev/null || true; fi
  for _ in $(seq 100); do [ -z "$(squeue -h -t R,CG -o %A 2>/dev/null)" ] && break; sleep 0.1; done
fi
pids=()
for f in "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid" /run/munge/munged.pid; do running "$f" && pids+=("$(cat "$f")"); done
[ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
for _ in $(seq 100); do
  left=()
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
  [ ${#left[@]} -eq 0 ] && break
  sleep 0.1
done
[ ${#left[@]} -gt 0 ] && kill -KILL "${left[@]}" 2>/dev/null
echo "slurm:down: stopped"
