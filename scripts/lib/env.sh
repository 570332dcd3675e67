# Shared by scripts/*: create or reuse .venv at the repository root and install the project.
# Idempotent: a stamp holding a hash of what the install builds from and the extras skips pip
# when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${EDGECLS_VENV:-$ROOT/.venv}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1

pick_python() {
  for py in python3.11 python3.12 python3.10 python3; do
    if command -v "$py" >/dev/null 2>&1; then echo "$py"; return; fi
  done
  echo "error: no python3 found: install Python 3.10-3.12" >&2; exit 2
}


ensure_venv() {  # ensure_venv EXTRAS (comma-separated, e.g. host,device,dev)
  local extras="$1"
  local want
  # setup.py and the C kernel too: the editable install compiles edgecls/_area.c in place.
  want="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/edgecls/_area.c" | sha256sum | cut -c1-16)-$extras"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.edgecls-stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "setting up $VENV with edgecls[$extras] ..." >&2
  [ -x "$VENV/bin/python" ] || "$(pick_python)" -m venv "$VENV"
  local log="$VENV/.edgecls-setup.log"
  if ! { "$VENV/bin/python" -m pip install -q --upgrade pip && "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"; } >"$log" 2>&1; then
    grep -vE "is ignored: it is neither" "$log" | tail -30 >&2
    echo "error: installing edgecls[$extras] into $VENV failed (full log: $log)" >&2
    exit 2
  fi
  echo "$want" > "$VENV/.edgecls-stamp"
}

# The last tflite-runtime (2.14, still common on Pi OS Bookworm) with numpy<2 and no
# TensorFlow: the runtime-compatibility test runs every artifact in it. Prints the venv's
# python on stdout; returns non-zero (with the reason on stderr) if it cannot be made.
LEGACY_VENV="${EDGECLS_LEGACY_VENV:-$ROOT/.venv-legacy}"
ensure_legacy_venv() {
  ensure_extra_venv "$LEGACY_VENV" "tflite-runtime==2.14.0 numpy<2"
}

# A throw-away venv with packages that must not meet the main venv's: tflite-runtime 2.14
# (numpy<2), MediaPipe Tasks and tflite-support (they pin protobuf/numpy against
# TensorFlow's). Prints the venv's python; returns non-zero (the reason on stderr) if it
# cannot be made, and the tests that need it then skip and say why.
#   ensure_extra_venv "$ROOT/.venv-mediapipe" "mediapipe"
ensure_extra_venv() {
  local venv="$1" want="$2" py
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.edgecls-stamp" 2>/dev/null)" = "$want" ]; then
    echo "$venv/bin/python"; return 0
  fi
  py="$(command -v python3.11 || command -v python3.10 || true)"
  if [ -z "$py" ]; then
    echo "note: no python3.10/3.11 for $want (no wheels for newer Pythons); the tests that need it will skip" >&2
    return 1
  fi
  echo "setting up $venv ($want) ..." >&2
  rm -rf "$venv"
  # shellcheck disable=SC2086  # $want is a list of requirements
  if "$py" -m venv "$venv" >&2 && "$venv/bin/python" -m pip install -q $want >&2; then
    echo "$want" > "$venv/.edgecls-stamp"
    echo "$venv/bin/python"; return 0
  fi
  echo "note: could not install $want into $venv; the tests that need it will skip" >&2
  rm -rf "$venv"
  return 1
}
