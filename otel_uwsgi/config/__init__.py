"""Configuration: every ``otel-*`` option declared once, and how a value is resolved.

Belongs here: option declarations (:mod:`.options`), their value parsers (:mod:`.parsers`),
loading with precedence *uwsgi.ini > environment > default* and validation (:mod:`.settings`),
decoding ``uwsgi.opt`` values (:mod:`.uwsgi_opt`, the only place that does) and reading a uWSGI
ini file's ``[uwsgi]`` section for the tools (:mod:`.uwsgi_ini`, the only ini reader).

Does not belong here: anything that imports ``uwsgi``, the OpenTelemetry SDK or another
otel_uwsgi room.  Everything here is pure, so every message is unit-tested.
"""
