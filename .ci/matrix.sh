#!/usr/bin/env bash
# CI: otel-uwsgi in the environments users have, beside the main run (Python 3.11, the newest
# OpenTelemetry from the index, PyPI's uWSGI), each in a fresh venv of its own:
#   - every other supported Python that pyenv has here (3.10, 3.12, 3.13): the unit tests and the
#     real-uWSGI smoke (spans from every worker, gzip on; an SDK whose private parts moved);
#   - the oldest supported OpenTelemetry line (.ci/constraints-oldest.txt: the floors of
#     pyproject.toml): the smoke, plus log export, the sample inis, the fast path stepping aside, and
#     start_as_current_span equal to the SDK's where use_span still records every BaseException;
#   - the oldest line the fast path runs on (.ci/constraints-fast-floor.txt): its span-equality tests;
#   - Debian's packaged uWSGI (uwsgi-core + uwsgi-plugin-python3, 2.0.21-debian, Python as a
#     plugin) with a venv of Debian's python3: `otel-uwsgi check --uwsgi /usr/bin/uwsgi` on the
#     sample inis (the check adds plugins = python3 and the venv itself).
# Each venv installs otel-uwsgi[test] itself (uWSGI compiles in it, so the tests run its uwsgi).
# Exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENVS=${OTEL_UWSGI_CI_VENVS:-/tmp/otel-uwsgi-ci-venvs}
mkdir -p "$VENVS"
SMOKE=(tests/integration/test_tracing.py tests/integration/test_changed_sdk.py tests/faults/test_worker_death.py)
failures=()

run_in_venv() {  # name python constraints-or-empty pytest-args...
    local name=$1 python=$2 constraints=$3
    shift 3
    local venv="$VENVS/$name" started
    started=$(date +%s)
    printf '\n--- %s (%s) ---\n' "$name" "$python"
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" \
        || ! "$venv/bin/python" -m pip install -q -U pip \
        || ! "$venv/bin/python" -m pip install -q ${constraints:+-c "$constraints"} -e '.[test]'; then
        failures+=("$name: install")
        return
    fi
    "$venv/bin/python" - <<'EOF'
import sys
from importlib.metadata import version
print("Python", sys.version.split()[0], "| opentelemetry-sdk", version("opentelemetry-sdk"),
      "| opentelemetry-instrumentation", version("opentelemetry-instrumentation"), "| uWSGI", version("uwsgi"))
EOF
    "$venv/bin/python" -c 'import otel_uwsgi.native._accel, otel_uwsgi.runtime._exit' || failures+=("$name: a C extension did not build")
    if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"; then
        failures+=("$name: tests")
    fi
    echo "$name: $(( $(date +%s) - started )) s"
}

PYENV_ROOT=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
for minor in 3.10 3.12 3.13; do
    python=$(ls -d "$PYENV_ROOT"/versions/"$minor".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$python" ]; then
        echo "matrix: no Python $minor under $PYENV_ROOT/versions: skipped"
        continue
    fi
    run_in_venv "python-$minor" "$python" "" tests/unit "${SMOKE[@]}"
done

run_in_venv "opentelemetry-oldest" "$(command -v python3)" .ci/constraints-oldest.txt \
    "${SMOKE[@]}" tests/integration/test_logs.py tests/integration/test_samples.py \
    tests/unit/instrumentation/fast/test_verified.py::test_the_installed_releases_decide_the_path \
    tests/unit/traces/test_current_span_equals_sdk.py

# The fast path is on by default where its spans are proven equal to the stock ones: prove it on
# the oldest line it runs on (its floor), with the oldest Django and drivers.
run_in_venv "fast-path-floor" "$(command -v python3)" .ci/constraints-fast-floor.txt \
    tests/unit/instrumentation/fast tests/integration/test_fast_path.py

debian_uwsgi() {
    local venv="$VENVS/debian" started ini
    started=$(date +%s)
    printf '\n--- Debian uwsgi-core ---\n'
    local need=()
    for pkg in uwsgi-core uwsgi-plugin-python3 python3-venv python3-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
            || { failures+=("debian: apt-get install ${need[*]}"); return; }
    fi
    /usr/bin/uwsgi --version
    rm -rf "$venv"
    if ! /usr/bin/python3 -m venv "$venv" || ! "$venv/bin/python" -m pip install -q -U pip \
        || ! "$venv/bin/python" -m pip install -q -e '.[django,mysql]'; then
        failures+=("debian: install")
        return
    fi
    for ini in ini/minimal.ini ini/django-mysql.ini ini/production.ini ini/strict.ini otel_uwsgi/demo/demo.ini; do
        if ! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 "$venv/bin/otel-uwsgi" check --uwsgi /usr/bin/uwsgi \
            "$ini" --requests 60 --no-collector; then
            failures+=("debian: otel-uwsgi check $ini")
        fi
    done
    echo "debian: $(( $(date +%s) - started )) s"
}

if command -v apt-get >/dev/null 2>&1 && [ -x /usr/bin/python3 ]; then
    debian_uwsgi
else
    echo "matrix: not a Debian machine: Debian's uWSGI skipped"
fi

if [ "${#failures[@]}" -gt 0 ]; then
    printf 'matrix: FAILED: %s\n' "${failures[@]}"
    exit 1
fi
echo "matrix: all green"
