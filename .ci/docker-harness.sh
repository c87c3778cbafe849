#!/usr/bin/env bash
# CI: the otel-uwsgi Docker harness end to end, on a machine with no image registry.
#   1. .ci/docker-infra.sh: docker.io, docker-compose, debootstrap; dockerd; the local base
#      images local/python:3.11 and local/mariadb:10.11 (cached after the first run)
#   2. docker/harness with those images and the host's CA bundle (PyPI sits behind a
#      TLS-intercepting proxy here), without the collector unless its image is present:
#      must exit 0 and print "OK: every worker delivered spans (...); metrics from every worker
#      pid (...); uWSGI server metrics once per interval (...)"
#   3. docker/harness --broken unreachable: must exit 1 with "FAIL: 4 of 4 workers sent no spans"
#   4. docker/harness --broken partial:     must exit 1 with "FAIL: 2 of 4 workers sent no spans (worker 2, 4)"
#      and "also: 2 of 4 worker pids sent no metrics"
#   5. docker/harness --broken duplicate:   must exit 1 with "FAIL: uWSGI server metrics arrived"
#      ("... extra time(s) within one interval": every worker exports them, not only worker 1)
#      (2b. with a CA bundle: an image that bakes the bundle in must fail the harness's proof)
#      (2c. the secrets test of the image the harness built, which `python -m pytest` skips
#       before dockerd runs: tests/faults/test_secrets.py::test_harness_image_layers_hold_no_token)
#   6. no harness container left; finally (trap) docker/dockerd.sh stop
# Exits non-zero on any failure.  Needs root.
# Environment:
#   OTEL_UWSGI_CA_BUNDLE   CA bundle for pip inside the build [/etc/ssl/certs/ca-certificates.crt
#                          when it exists]; set it empty to build without one
#   COLLECTOR_IMAGE        collector image; used only if already present locally
#   OTEL_UWSGI_DOCKER_STATE, DOCKER: as in .ci/docker-infra.sh / docker/dockerd.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

export DOCKER=${DOCKER:-/usr/bin/docker}
export PYTHON_IMAGE=local/python:3.11
export MYSQL_IMAGE=local/mariadb:10.11
export COLLECTOR_IMAGE=${COLLECTOR_IMAGE:-otel/opentelemetry-collector:latest}
if [ -z "${OTEL_UWSGI_CA_BUNDLE+set}" ] && [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    export OTEL_UWSGI_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi

T0=$(date +%s)
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/otel-uwsgi-docker-ci.XXXXXX")
failures=()
timings=()

section() { printf '\n\n################################################################################\n'
            printf '### %s\n' "$*"
            printf '################################################################################\n'; }
ok() { printf 'docker-harness CI: PASS: %s\n' "$*"; }
fail() { printf 'docker-harness CI: FAIL: %s\n' "$*"; failures+=("$*"); }
since() { echo "$(( $(date +%s) - $1 ))s"; }

# shellcheck disable=SC2317  # invoked by the EXIT trap
finish() {
    local rc=$?
    section "stop dockerd (docker/dockerd.sh stop)"
    docker/dockerd.sh stop || { echo "docker-harness CI: dockerd.sh stop failed"; rc=1; }
    section "summary ($(since "$T0") in all; logs in $LOGDIR)"
    printf '  %s\n' "${timings[@]}"
    if [ "${#failures[@]}" -gt 0 ]; then
        printf 'docker-harness CI: FAILED:\n'
        printf '  - %s\n' "${failures[@]}"
        [ "$rc" != 0 ] || rc=1
    elif [ "$rc" != 0 ]; then
        printf 'docker-harness CI: FAILED (exit %s before all steps ran)\n' "$rc"
    else
        printf 'docker-harness CI: all steps passed\n'
    fi
    exit "$rc"
}
trap finish EXIT

# run_harness NAME ARGS...: docker/harness with its output on the console and in $LOGDIR/NAME.log;
# sets HARNESS_RC.
run_harness() {
    local name=$1 t
    shift
    t=$(date +%s)
    set +e
    docker/harness "$@" 2>&1 | tee "$LOGDIR/$name.log"
    HARNESS_RC=${PIPESTATUS[0]}
    set -e
    timings+=("$name: $(since "$t") (exit $HARNESS_RC)")
}

section "1/6 docker infrastructure (.ci/docker-infra.sh, docker/dockerd.sh start)"
t=$(date +%s)
bash .ci/docker-infra.sh
docker/dockerd.sh start
timings+=("infrastructure: $(since "$t")")

collector_args=(--no-collector)
if "$DOCKER" image inspect "$COLLECTOR_IMAGE" >/dev/null 2>&1; then
    collector_args=(--collector)
    echo "collector image $COLLECTOR_IMAGE is present: the harness runs the full path"
else
    echo "collector image $COLLECTOR_IMAGE is not present (no registry here): the harness runs without it"
fi
ca_args=()
if [ -n "${OTEL_UWSGI_CA_BUNDLE:-}" ]; then
    ca_args=(--ca-bundle "$OTEL_UWSGI_CA_BUNDLE")
fi

section "2/6 docker/harness (local images${OTEL_UWSGI_CA_BUNDLE:+, CA bundle}): must pass"
run_harness harness "${collector_args[@]}" "${ca_args[@]}"
ok_line='^OK: every worker delivered spans .*; metrics from every worker pid .*; uWSGI server metrics once per interval'
if [ "$HARNESS_RC" = 0 ] && grep -q "$ok_line" "$LOGDIR/harness.log"; then
    ok "docker/harness exited 0: every worker delivered spans and metrics, server metrics once per interval"
else
    fail "docker/harness exited $HARNESS_RC (expected 0 and an OK line about spans and metrics)"
fi

if [ -n "${OTEL_UWSGI_CA_BUNDLE:-}" ]; then
    section "2b/6 the CA-bundle proof catches a leak (an image that bakes the bundle in must fail it)"
    t=$(date +%s)
    leakdir=$(mktemp -d "$LOGDIR/leak.XXXXXX")
    cp "$OTEL_UWSGI_CA_BUNDLE" "$leakdir/bundle.pem"
    printf 'FROM %s\nCOPY bundle.pem /usr/local/share/leaked-bundle.pem\n' \
        "${OTEL_UWSGI_APP_IMAGE:-otel-uwsgi-harness:latest}" >"$leakdir/Dockerfile"
    leak_image=otel-uwsgi-harness-leaktest:latest
    "$DOCKER" build -q -t "$leak_image" "$leakdir" >/dev/null
    set +e
    docker/harness --check-image "$leak_image" --ca-bundle "$OTEL_UWSGI_CA_BUNDLE" 2>&1 | tee "$LOGDIR/leak-check.log"
    leak_rc=${PIPESTATUS[0]}
    set -e
    "$DOCKER" rmi -f "$leak_image" >/dev/null || true
    rm -rf "$leakdir"
    timings+=("leak check: $(since "$t") (exit $leak_rc)")
    if [ "$leak_rc" = 1 ] && grep -q 'FAIL: the CA bundle leaked' "$LOGDIR/leak-check.log"; then
        ok "the CA-bundle proof detects a bundle baked into an image"
    else
        fail "the CA-bundle proof did not detect a baked-in bundle (exit $leak_rc)"
    fi
fi

section "2c/6 no header token in any layer of the harness image (tests/faults/test_secrets.py)"
t=$(date +%s)
set +e
python3 -m pytest -q -rs tests/faults/test_secrets.py::test_harness_image_layers_hold_no_token 2>&1 \
    | tee "$LOGDIR/image-secrets.log"
secrets_rc=${PIPESTATUS[0]}
set -e
timings+=("image secrets test: $(since "$t") (exit $secrets_rc)")
if [ "$secrets_rc" = 0 ] && grep -q '1 passed' "$LOGDIR/image-secrets.log"; then
    ok "the harness image holds no header token and no header-like variable (test ran, not skipped)"
else
    fail "tests/faults/test_secrets.py::test_harness_image_layers_hold_no_token did not pass (exit $secrets_rc; skipped counts as failed here)"
fi

# expect_reject NAME REASON [ALSO] -- ARGS...: the harness must exit 1 (the checker's FAIL, not a
# setup error: 2) and print REASON (and ALSO, a further problem line, when given).
expect_reject() {
    local name=$1 reason=$2 also=""
    shift 2
    if [ "$1" != -- ]; then also=$1; shift; fi
    shift
    run_harness "$name" --no-build "${collector_args[@]}" "$@"
    if [ "$HARNESS_RC" = 1 ] && grep -qF "$reason" "$LOGDIR/$name.log" \
        && { [ -z "$also" ] || grep -qF "$also" "$LOGDIR/$name.log"; }; then
        ok "$name rejected (exit 1): $(grep -m1 -F "$reason" "$LOGDIR/$name.log")"
        [ -z "$also" ] || ok "$name also: $(grep -m1 -F "$also" "$LOGDIR/$name.log")"
    else
        fail "$name: exit $HARNESS_RC, expected 1 with the line '$reason'${also:+ and '$also'}"
    fi
}

section "3/6 docker/harness --broken unreachable: must fail"
expect_reject broken-unreachable "FAIL: 4 of 4 workers sent no spans" -- --broken unreachable

section "4/6 docker/harness --broken partial: must fail"
expect_reject broken-partial "FAIL: 2 of 4 workers sent no spans (worker 2, 4)" \
    "also: 2 of 4 worker pids sent no metrics" -- --broken partial

section "5/6 docker/harness --broken duplicate: must fail"
expect_reject broken-duplicate "FAIL: uWSGI server metrics arrived" -- --broken duplicate

section "6/6 no harness container left"
left=$("$DOCKER" ps -a -q --filter label=otel-uwsgi.harness=1)
if [ -z "$left" ]; then
    ok "no container labelled otel-uwsgi.harness=1 is left"
else
    "$DOCKER" ps -a --filter label=otel-uwsgi.harness=1
    fail "containers left behind: $(echo "$left" | tr '\n' ' ')"
fi
