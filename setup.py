"""Build of the optional C extensions (``otel_uwsgi.native._accel``, ``otel_uwsgi.runtime._exit``); the rest is in pyproject.toml.

The extension is optional: without a C compiler the install goes on and otel-uwsgi encodes
in Python (same results, more CPU).  ``OTEL_UWSGI_NO_EXTENSIONS=1`` at install time skips it,
and at run time leaves it unused, as aiohttp's and yarl's ``*_NO_EXTENSIONS`` do.
"""

import os

from setuptools import Extension, setup

extensions = []
if os.environ.get("OTEL_UWSGI_NO_EXTENSIONS", "") in ("", "0"):
    extensions.append(
        Extension(
            "otel_uwsgi.native._accel",
            ["otel_uwsgi/native/_accel.c", "otel_uwsgi/native/_lifecycle.c", "otel_uwsgi/native/_server.c",
             "otel_uwsgi/native/_slots.c", "otel_uwsgi/native/_django.c"],
            depends=["otel_uwsgi/native/_accel.h"],
            optional=True,
        )
    )
    # The master's exit handler (otel_uwsgi/runtime/master_exit.py): ships what busy workers left.
    extensions.append(Extension("otel_uwsgi.runtime._exit", ["otel_uwsgi/runtime/_exit.c"], optional=True))

setup(ext_modules=extensions)
