# Local stand-in for the official mariadb:11 / mysql:8 images, for machines
# that cannot reach an image registry.  Built by .ci/docker-infra.sh as
# local/mariadb:10.11 on top of a debootstrapped Debian bookworm.
# Throwaway test database: by default root has an empty password from any
# host and database `test` exists.  The entrypoint honours the official
# images' MARIADB_* / MYSQL_* variables (see mariadb-entrypoint.sh).
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8

RUN apt-get update \
 && apt-get install -y --no-install-recommends mariadb-server mariadb-client \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/mysqld /docker-entrypoint-initdb.d \
 && chown mysql:mysql /run/mysqld \
 && printf '%s\n' \
        '[mariadbd]' \
        'bind-address = 0.0.0.0' \
        'port = 3306' \
        'skip-name-resolve' \
        'skip-host-cache' \
        > /etc/mysql/mariadb.conf.d/99-otel-uwsgi.cnf

COPY mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY mariadb-healthcheck.sh /usr/local/bin/healthcheck.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh /usr/local/bin/healthcheck.sh

EXPOSE 3306
STOPSIGNAL SIGTERM
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]
