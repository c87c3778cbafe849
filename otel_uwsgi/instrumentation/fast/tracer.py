"""The tracer of this process, looked up once the worker's provider exists.

Middleware, DB hooks and the requests wrapper are created in the uWSGI master, before fork, when
only the API's proxy provider exists; the SDK tracer is fetched on first use in each worker and
kept (and, for the fast path's own spans, wrapped in a
:class:`~otel_uwsgi.traces.lean.tracer.LeanTracer`), which saves the proxy's indirection on every span.
"""

from __future__ import annotations

from typing import Any, Optional

from opentelemetry import trace

from otel_uwsgi import __version__
from otel_uwsgi.traces.lean.tracer import LeanTracer


class LazyTracer:
    """``get()`` returns the real tracer once a provider is set, the no-op proxy before.  Its scope
    is ``name`` at ``version`` (otel-uwsgi's when None): the fast path gives the stock
    instrumentation's whose spans it reproduces (:func:`otel_uwsgi.instrumentation.fast.verified.stock_scope`)."""

    def __init__(self, name: str, schema_url: str, version: Optional[str] = None) -> None:
        self._name, self._schema_url, self._version = name, schema_url, version or __version__
        #: the real tracer once :meth:`get` found it (None before): read first on the hot path
        self.tracer: Any = None
        #: the provider's own tracer once :meth:`sdk` found it (None before), likewise
        self.provider_tracer: Any = None

    def sdk(self) -> Any:
        """The provider's own tracer for this scope (``start_as_current_span`` and all), kept once a
        provider is set; the proxy's before."""
        tracer = self.provider_tracer
        if tracer is None:
            provider = trace.get_tracer_provider()
            tracer = provider.get_tracer(self._name, self._version, schema_url=self._schema_url)
            if not isinstance(provider, trace.ProxyTracerProvider):
                self.provider_tracer = tracer
        return tracer

    def get(self) -> Any:
        tracer = self.tracer
        if tracer is None:
            tracer = self.sdk()
            if self.provider_tracer is not None:
                lean = getattr(tracer, "_lean", None)  # a LeanSdkTracer (otel-lean-spans) carries one
                tracer = self.tracer = lean if isinstance(lean, LeanTracer) else LeanTracer(tracer)
        return tracer
