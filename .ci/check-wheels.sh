#!/usr/bin/env bash
# CI: the wheel of each supported CPython (3.10-3.13) that pyenv has here, each built by that Python
# from the sdist in DIST (.ci/run's `python -m build`) and installed into a fresh venv of it, away
# from the source tree: the wheel carries that Python's tag; both C extensions and the package import
# from the venv; the C encoder passed the encoder's own probe there (its bytes equal the SDK's, else
# it would be off); the journal's C twins equal the Python ones
# (tests/unit/traces/journal/test_native_journal.py, run from a copy of tests/ so that nothing
# imports the checkout; a skip counts as a failure); `otel-uwsgi samples` prints the sample inis.
# With --all-twins, tests/unit/native/test_accel_equals_python.py too (hypothesis: minutes per
# Python; .ci/matrix.sh runs it on each Python from an editable install anyway).  Why one wheel per
# Python and not one abi3 wheel: README, "Wheels".  Two Pythons at a time; pip's cache is reused.
#
#   .ci/check-wheels.sh DIST [--all-twins]        (the wheels are left in DIST/wheels)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST=$(cd "${1:?usage: .ci/check-wheels.sh DIST (the directory holding the sdist)}" && pwd)
sdist=$(ls "$DIST"/otel_uwsgi-*.tar.gz)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$DIST/wheels" "$work/suite"
cp -r "$ROOT/tests" "$ROOT/pyproject.toml" "$work/suite/"  # pyproject.toml: the pytest settings only
TWINS=(tests/unit/traces/journal/test_native_journal.py)
[ "${2:-}" = --all-twins ] && TWINS+=(tests/unit/native/test_accel_equals_python.py)

fail() { echo "$*"; exit 1; }  # one_python runs in a subshell of its own: this ends that subshell

one_python() {  # minor python: prints what it found; exits non-zero at the first failure
    local minor=$1 python=$2 tag="cp${1/./}" venv="$work/venv-$1" built="$work/built-$1" wheel out
    "$python" -m venv "$venv" || fail "$python -m venv failed"
    "$venv/bin/python" -m pip install -q -U pip || fail "pip install -U pip failed"
    "$venv/bin/python" -m pip wheel -q --no-deps -w "$built" "$sdist" || fail "pip wheel of the sdist failed"
    wheel=$(ls "$built"/otel_uwsgi-*-"$tag"-"$tag"-linux_*.whl 2>/dev/null) \
        || fail "no $tag-$tag wheel; built: $(ls "$built")"
    cp "$wheel" "$DIST/wheels/"
    "$venv/bin/python" -m pip install -q "$wheel" pytest hypothesis || fail "pip install of the wheel failed"
    cd "$work/suite" || fail "no $work/suite"
    "$venv/bin/python" - <<'PY' || fail "the package or its C extensions are not the wheel's, or the C encoder is off"
import sys
import otel_uwsgi
import otel_uwsgi.native._accel
import otel_uwsgi.runtime._exit
from otel_uwsgi.export import encoder
for module in (otel_uwsgi, otel_uwsgi.native._accel, otel_uwsgi.runtime._exit):
    assert module.__file__.startswith(sys.prefix + "/"), f"{module.__name__} imported from {module.__file__}"
assert encoder.native_span_field is not None, "the C encoder did not pass the probe (encoder.py)"
PY
    "$venv/bin/otel-uwsgi" samples minimal | cmp -s - "$ROOT/ini/minimal.ini" \
        || fail "otel-uwsgi samples minimal does not print ini/minimal.ini"
    out=$("$venv/bin/python" -m pytest -q -p no:cacheprovider "${TWINS[@]}" 2>&1) \
        || fail "$(echo "$out" | tail -n 30)"
    case "$out" in *skipped*) fail "$(echo "$out" | tail -n 5) (a C twin test was skipped)" ;; esac
    echo "$(basename "$wheel"): the wheel's extensions import, C encoder on, samples print; $(echo "$out" | tail -n 1)"
}

PYENV_ROOT=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
pids=() minors=()
for minor in 3.10 3.11 3.12 3.13; do
    python=$(ls -d "$PYENV_ROOT"/versions/"$minor".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$python" ]; then
        echo "check-wheels: no Python $minor under $PYENV_ROOT/versions: skipped"
        continue
    fi
    if [ "${#pids[@]}" -ge 2 ]; then  # two at a time: the machine has two cores
        wait "${pids[-2]}" || true
    fi
    (set +e; (one_python "$minor" "$python") >"$work/$minor.log" 2>&1; echo $? >"$work/$minor.rc") &
    pids+=($!) minors+=("$minor")
done
wait
failed=0
for minor in "${minors[@]}"; do
    if [ "$(cat "$work/$minor.rc")" = 0 ]; then
        tail -n 1 "$work/$minor.log" | sed "s/^/check-wheels: $minor: /"
    else
        sed "s/^/check-wheels: $minor: /" "$work/$minor.log"
        echo "check-wheels: $minor: FAILED"
        failed=1
    fi
done
[ "$failed" = 0 ] && echo "check-wheels: ${#minors[@]} wheels, each installed and tested on its own Python"
exit "$failed"
