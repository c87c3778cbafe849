"""What the hot path may rely on in this process: the optional C accelerator and the layout of the
installed OpenTelemetry objects.

Belongs here: loading ``otel_uwsgi.native._accel`` (:mod:`.accel`, with its
``OTEL_UWSGI_NO_EXTENSIONS`` switch) and the probes of the OpenTelemetry API/SDK that the lean
span start and the direct encoder depend on (:mod:`.sdk_layout`).  Every other room asks here
before it relies on the C code or on how the SDK lays out its objects.

Does not belong here: anything that imports another otel_uwsgi room (this is the bottom floor).
"""
