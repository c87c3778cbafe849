"""The demo Django site, traced with otel-uwsgi's defaults except the export's gzip: Intel ISA-L's
(python-isal) level 1 instead of zlib's.  The ``isal`` configuration of ``bench/run.py``: what the
defaults did from 2026-12-07 until ISA-L was measured under load (bench/README.md, "ISA-L's gzip,
measured under load").  Needs ``pip install isal``.
"""

try:
    from isal import isal_zlib
except ImportError as exc:  # pragma: no cover - a bench set-up error, said in one line
    raise RuntimeError("bench config 'isal' needs python-isal: pip install isal") from exc

import otel_uwsgi.export.span_exporter as _exporter


def _gzip_isal(body: bytes, level: int) -> bytes:
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


_exporter.gzip_body = _gzip_isal

from otel_uwsgi.demo.wsgi import application  # noqa: E402,F401 - after the swap
