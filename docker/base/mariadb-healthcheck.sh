#!/bin/sh
# Health check of local/mariadb:10.11, callable like the official image's
# `healthcheck.sh --connect --innodb_initialized` (arguments are ignored):
# healthy once the real server accepts TCP connections (`ping` needs no
# credentials); the entrypoint's temporary server does not listen on TCP.
exec mariadb-admin --protocol=tcp --host=127.0.0.1 --port=3306 --connect-timeout=2 --silent ping
