"""A tiny Django site and a plain WSGI app, used by the sample ini files, the tests, the
``otel-uwsgi check`` demo and the Docker harness.  Not imported by the library itself."""
