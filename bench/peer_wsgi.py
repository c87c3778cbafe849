"""The downstream service of the whole-stack view (``/stack`` in ``bench/run.py``): a plain uWSGI
answering ``{}`` to every request, outside the measured uWSGI's process group (its CPU is not
counted), so the traced app's outgoing call has a real HTTP peer."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]
