#!/usr/bin/env bash
# The GPU acceptance run (bench/README.md, "GPU acceptance run"): every GPU check in one command.
#   bash bench/gpu.sh            on the card, <= 8 min on one H100/H200; report in runs/bench-gpu/
#   bash bench/gpu.sh --tiny     the CPU dress rehearsal (<= 60 s)
# Runs from the working tree (PYTHONPATH), so the card needs no install of jointlab: its python3 with
# torch is enough. PYTHON=... picks the interpreter (default: .venv/bin/python if present, else python3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; else py=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$py" "$root/bench/gpu.py" "$@"
