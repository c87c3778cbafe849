#!/bin/bash
# Entrypoint of local/mariadb:10.11 (docker/base/mariadb.Dockerfile).
# A small subset of the official mariadb image's docker-entrypoint.sh:
#   MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD   root password (default: empty)
#   MARIADB_ALLOW_EMPTY_ROOT_PASSWORD / MYSQL_ALLOW_EMPTY_PASSWORD  accepted (empty is the default here)
#   MARIADB_RANDOM_ROOT_PASSWORD / MYSQL_RANDOM_ROOT_PASSWORD       generate and print one
#   MARIADB_ROOT_HOST / MYSQL_ROOT_HOST           host part of the remote root account (default %)
#   MARIADB_DATABASE / MYSQL_DATABASE             database to create (default: test)
#   MARIADB_USER + MARIADB_PASSWORD (or MYSQL_*)  extra user with all rights on that database
#   /docker-entrypoint-initdb.d/*.sql, *.sh       run once, at first start
# Arguments starting with '-' are passed to mariadbd, as with the official image.
set -euo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
sql_str() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\\\'}"; }
# shellcheck disable=SC2016  # literal backticks
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

if [ "${1:0:1}" = '-' ]; then set -- mariadbd "$@"; fi
case "$1" in mariadbd|mysqld) shift; set -- mariadbd "$@" ;; *) exec "$@" ;; esac

DATADIR=/var/lib/mysql
MARKER=$DATADIR/.docker-initialized
INIT_SOCK=/run/mysqld/init.sock
mkdir -p /run/mysqld "$DATADIR"
chown mysql:mysql /run/mysqld

if [ "$(id -u)" = 0 ]; then set -- "$1" --user=mysql "${@:2}"; fi

if [ ! -e "$MARKER" ]; then
    root_pw=${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}
    if [ -n "${MARIADB_RANDOM_ROOT_PASSWORD:-${MYSQL_RANDOM_ROOT_PASSWORD:-}}" ]; then
        root_pw=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
        log "GENERATED ROOT PASSWORD: $root_pw"
    fi
    root_host=${MARIADB_ROOT_HOST:-${MYSQL_ROOT_HOST:-%}}
    database=${MARIADB_DATABASE:-${MYSQL_DATABASE:-test}}
    user=${MARIADB_USER:-${MYSQL_USER:-}}
    user_pw=${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}

    if [ ! -d "$DATADIR/mysql" ]; then
        log "initializing empty data directory"
        chown -R mysql:mysql "$DATADIR"
        mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
            --auth-root-authentication-method=socket >/dev/null
    fi

    log "starting temporary server"
    "$@" --skip-networking --socket="$INIT_SOCK" --skip-log-bin &
    tmp_pid=$!
    deadline=$((SECONDS + 60))
    until mariadb-admin --socket="$INIT_SOCK" --silent ping >/dev/null 2>&1; do
        kill -0 "$tmp_pid" 2>/dev/null || { log "temporary server died"; exit 1; }
        [ "$SECONDS" -lt "$deadline" ] || { log "temporary server not ready in 60s"; exit 1; }
        sleep 0.2
    done

    pw=$(sql_str "$root_pw")
    {
        echo "DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host<>'localhost');"
        echo "FLUSH PRIVILEGES;"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD($pw) OR unix_socket;"
        if [ "$root_host" != localhost ]; then
            echo "CREATE USER $(sql_str root)@$(sql_str "$root_host") IDENTIFIED BY $pw;"
            echo "GRANT ALL ON *.* TO 'root'@$(sql_str "$root_host") WITH GRANT OPTION;"
        fi
        if [ -n "$database" ]; then
            echo "CREATE DATABASE IF NOT EXISTS $(sql_ident "$database");"
        fi
        if [ -n "$user" ]; then
            echo "CREATE USER $(sql_str "$user")@'%' IDENTIFIED BY $(sql_str "$user_pw");"
            [ -z "$database" ] || echo "GRANT ALL ON $(sql_ident "$database").* TO $(sql_str "$user")@'%';"
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadb --socket="$INIT_SOCK" -uroot

    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sql) log "running $f"; mariadb --socket="$INIT_SOCK" -uroot ${database:+"$database"} <"$f" ;;
            *.sh)
                log "running $f"
                # shellcheck disable=SC1090
                . "$f"
                ;;
            *) [ ! -e "$f" ] || log "ignoring $f" ;;
        esac
    done

    mariadb-admin --socket="$INIT_SOCK" -uroot shutdown
    wait "$tmp_pid" || true
    touch "$MARKER"
    log "initialized (database '${database}', root@'${root_host}' $( [ -n "$root_pw" ] && echo 'with a password' || echo 'with an empty password'))"
fi

log "starting: $*"
exec "$@"
