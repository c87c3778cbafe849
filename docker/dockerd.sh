#!/usr/bin/env bash
# Start / stop / query a Docker engine for the otel-uwsgi Docker harness on a
# machine where no engine runs by default (CI, dev VMs).  Installs nothing:
# see .ci/docker-infra.sh for that.
#
#   docker/dockerd.sh start    # start dockerd (root) unless one already answers
#   docker/dockerd.sh stop     # stop harness containers, then the dockerd we started
#   docker/dockerd.sh status   # exit 0 if an engine answers, 3 if not
#
# Environment:
#   OTEL_UWSGI_DOCKER_STATE          state dir (pid files, log)   [/var/tmp/otel-uwsgi-docker]
#   OTEL_UWSGI_DOCKER_START_TIMEOUT  seconds to wait for `docker info`        [60]
#   OTEL_UWSGI_DOCKER_STOP_TIMEOUT   seconds to wait for dockerd to exit      [30]
#   OTEL_UWSGI_DOCKERD_ARGS          extra dockerd arguments (word-split)     []
#   DOCKER                           docker client to use [/usr/bin/docker if present]
set -euo pipefail

STATE_DIR=${OTEL_UWSGI_DOCKER_STATE:-/var/tmp/otel-uwsgi-docker}
PIDFILE=$STATE_DIR/dockerd.pid
CTRD_PIDFILE=$STATE_DIR/containerd.pid
LOG=$STATE_DIR/dockerd.log
START_TIMEOUT=${OTEL_UWSGI_DOCKER_START_TIMEOUT:-60}
STOP_TIMEOUT=${OTEL_UWSGI_DOCKER_STOP_TIMEOUT:-30}
LABEL=otel-uwsgi.harness=1

# A newer client without buildx may come first on PATH (/usr/local/bin/docker);
# the distro's 20.10 client at /usr/bin/docker has BuildKit built in.
if [ -z "${DOCKER:-}" ]; then
    if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
fi

log() { printf '[dockerd.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# alive PID: running and not a zombie (PID 1 may reap our orphans late).
alive() {
    local state
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    state=$(sed -e 's/^.*) //' -e 's/ .*//' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] && [ "$state" != X ]
}
# pid_is PID NAME: true if PID is alive and its command name is NAME.
pid_is() {
    alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}
read_pid() { if [ -f "$1" ]; then tr -dc '0-9' <"$1"; fi; }
engine_answers() { [ -n "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_gone PID TIMEOUT: true once PID has exited, false at the deadline.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while alive "$pid"; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# terminate PID NAME TIMEOUT: SIGTERM, wait, SIGKILL.
terminate() {
    local pid=$1 name=$2 timeout=$3
    pid_is "$pid" "$name" || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$timeout"; then
        log "$name (pid $pid) still alive after ${timeout}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "$name (pid $pid) survived SIGKILL"
    fi
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

lock() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/lock"
    flock -w 120 9 || die "could not lock $STATE_DIR/lock"
}

cmd_start() {
    need_root
    lock
    [ -n "$DOCKER" ] || die "no docker client found (install docker.io)"
    command -v dockerd >/dev/null || die "dockerd not found (install docker.io)"

    local pid
    pid=$(read_pid "$PIDFILE")
    if pid_is "$pid" dockerd; then
        log "dockerd already running from $PIDFILE (pid $pid)"
        wait_ready "$pid" "$(now)"
        return 0
    fi
    # A containerd left behind by a dockerd of ours that died.
    terminate "$(read_pid "$CTRD_PIDFILE")" containerd 15
    rm -f "$PIDFILE" "$CTRD_PIDFILE"
    if engine_answers; then
        log "a Docker engine not started by this script already answers; using it (stop will leave it alone)"
        return 0
    fi
    local other
    for other in $(pgrep -x dockerd || true); do
        alive "$other" && die "a dockerd not started by this script runs (pid $other) but does not answer"
    done

    local own_containerd=1
    [ -S /run/containerd/containerd.sock ] && own_containerd=0

    log "starting dockerd (log: $LOG)"
    local t0
    t0=$(now)
    printf '\n===== %s dockerd start =====\n' "$(date -Is)" >>"$LOG"
    # shellcheck disable=SC2086  # extra args are meant to be word-split
    setsid dockerd ${OTEL_UWSGI_DOCKERD_ARGS:-} </dev/null >>"$LOG" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PIDFILE"
    wait_ready "$pid" "$t0"

    if [ "$own_containerd" = 1 ]; then
        local cpid
        cpid=$(pgrep -P "$pid" -x containerd | head -n1 || true)
        if [ -n "$cpid" ]; then echo "$cpid" >"$CTRD_PIDFILE"; fi
    fi
    log "dockerd ready after $(elapsed "$t0")s (pid $pid$( [ -f "$CTRD_PIDFILE" ] && echo ", containerd pid $(cat "$CTRD_PIDFILE")"))"
}

# wait_ready PID T0: poll `docker info` until it answers, the daemon dies, or the deadline.
wait_ready() {
    local pid=$1 t0=$2 deadline=$((SECONDS + START_TIMEOUT))
    until engine_answers; do
        if ! alive "$pid"; then
            log "dockerd (pid $pid) exited; last log lines:"
            tail -n 30 "$LOG" >&2 || true
            rm -f "$PIDFILE" "$CTRD_PIDFILE"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "dockerd did not answer within ${START_TIMEOUT}s; last log lines:"
            tail -n 30 "$LOG" >&2 || true
            die "dockerd not ready (left running as pid $pid; '$0 stop' ends it)"
        fi
        sleep 0.2
    done
}

cmd_stop() {
    need_root
    lock
    if engine_answers; then
        local ids
        ids=$("$DOCKER" ps -q --filter "label=$LABEL" || true)
        if [ -n "$ids" ]; then
            log "stopping harness containers: $(echo "$ids" | tr '\n' ' ')"
            # shellcheck disable=SC2086
            "$DOCKER" stop -t 10 $ids >/dev/null || log "warning: docker stop failed for some containers"
        fi
    fi

    local pid cpid
    pid=$(read_pid "$PIDFILE")
    cpid=$(read_pid "$CTRD_PIDFILE")
    if [ -z "$pid" ]; then
        log "no dockerd started by this script ($PIDFILE absent); nothing else to stop"
        return 0
    fi
    if pid_is "$pid" dockerd; then
        terminate "$pid" dockerd "$STOP_TIMEOUT"
    else
        log "dockerd pid $pid from $PIDFILE is not running"
    fi
    # dockerd stops the containerd it supervises on a clean exit; make sure.
    if [ -n "$cpid" ] && pid_is "$cpid" containerd; then
        wait_gone "$cpid" 10 || terminate "$cpid" containerd 15
    fi
    rm -f "$PIDFILE" "$CTRD_PIDFILE"
    log "stopped"
}

cmd_status() {
    local pid
    pid=$(read_pid "$PIDFILE")
    if engine_answers; then
        local ver
        ver=$("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
        if pid_is "$pid" dockerd; then
            echo "running: dockerd $ver, pid $pid, started by this script (state $STATE_DIR)"
        else
            echo "running: dockerd $ver, not started by this script"
        fi
        return 0
    fi
    if pid_is "$pid" dockerd; then
        echo "starting or unresponsive: dockerd pid $pid does not answer yet"
    else
        echo "not running"
    fi
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
