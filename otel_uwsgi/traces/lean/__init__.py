"""A leaner start and end for SDK spans: the fast instrumentation's, and (``otel-lean-spans``,
on by default) the stock instrumentations' through :class:`~.tracer.LeanSdkTracer`.

The SDK's ``Tracer.start_span`` re-validates every attribute value (the fast path builds them
from strings and ints it already checked), allocates links and events lists, and at ``end``
copies the span into a new ``ReadableSpan`` for the processors.  ``LeanTracer`` makes the same
SDK ``Span`` objects, with the same sampler, ids, limits, resource, scope and processors, but:

* attributes the caller vouches for (``str``/``int``/``float``/``bool`` values, at most the
  attribute-count limit, no value-length limit) go into the span's ``BoundedAttributes``
  without the per-value checks (the test of the types is C where ``otel_uwsgi.native._accel`` was
  built); anything else takes the SDK's own path;
* the SDK's own samplers (static, trace-id ratio, parent-based) are decided directly by their
  rules, without a ``SamplingResult`` and three more look-ups of the parent (a root span's
  static decision without any call), and the SDK's random ids come from ``random`` directly;
* the events and links lists are made when the first event or link is added;
* the ended span itself is handed to ``on_end`` (it is a ``ReadableSpan``, and once ended it
  no longer changes: every mutator of an ended SDK span is a no-op with a warning);
* the fields a span shares with its tracer's other spans live on a class made per tracer, so a
  span is 8 field stores; its ``SpanContext`` is built as the tuple the API builds;
* the processors' hooks are called directly, in the chain's order, skipping those whose body is
  ``pass`` (the batch processor's ``on_start`` and ``_on_ending``).

Everything else, including what user code does with the span (``set_attributes``,
``record_exception``, ...) and the SDK's own span metrics, is the SDK's code, except that
``set_attribute`` of a str/int/float/bool value the span has room for skips the SDK's cleaning
calls (which would return the value unchanged).  It delegates to
the SDK's ``start_span`` when the tracer is not an SDK tracer (no provider, or another SDK),
the sampler is not one of the SDK's, a value-length limit is set, or this SDK's spans do not
have exactly the fields set here (checked once per tracer, see :func:`.tracer._sdk_as_expected`).

Belongs here: the lean span and its processor hooks (:mod:`.span`), the SDK samplers' rules
(:mod:`.sampling`), the tracer that starts lean spans or steps aside (:mod:`.tracer`), and its
``start_as_current_span`` context manager (:mod:`.current`).  Not
here: what the spans carry (:mod:`otel_uwsgi.instrumentation`) or how they leave
(:mod:`otel_uwsgi.export`).
"""
