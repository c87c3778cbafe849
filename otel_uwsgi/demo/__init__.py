"""The demo apps, used by ``otel-uwsgi demo``, the sample ini files, the tests and the Docker
harness: a tiny Django site, a Flask app and a plain WSGI app, each with the same whole-trace
``/trace`` (the Flask and plain ones share :mod:`.services`); :mod:`.stack` picks the one installed
here and :mod:`.installed` loads it.  Not imported by the library itself."""
