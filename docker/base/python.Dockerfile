# Local stand-in for the official python:3.11-slim image, for machines that
# cannot reach an image registry.  Built by .ci/docker-infra.sh as
# local/python:3.11 on top of a debootstrapped Debian bookworm (Python 3.11).
# Where a registry is reachable, python:3.11-slim serves the same purpose.
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# python-is-python3 gives `python`; python3-pip gives `pip`.  Like the official
# image, pip may install into the system interpreter: drop Debian's PEP 668
# marker (this is a throwaway container image, not a managed system).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev python3-pip python-is-python3 \
        gcc libc6-dev libmariadb-dev pkg-config ca-certificates \
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && python --version && pip --version

CMD ["python3"]
