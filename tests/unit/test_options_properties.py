"""Property: any uwsgi.opt content is either accepted or rejected with the one-line ConfigError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_uwsgi.options import BY_NAME, ConfigError, load

names = st.one_of(st.sampled_from(sorted(BY_NAME)), st.text(min_size=1, max_size=30).map(lambda s: "otel-" + s))
values = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40),
    st.just(True),
    st.lists(st.binary(max_size=20), max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(names, values, max_size=5), st.dictionaries(st.sampled_from(
    [o.env for o in BY_NAME.values() if o.env]), st.text(max_size=30), max_size=4))
def test_never_a_traceback(opt, environ):
    try:
        settings_ = load(opt, environ)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("otel-uwsgi: ") and "\n" not in message
    else:
        assert all(w.startswith("otel-uwsgi: ") and "\n" not in w for w in settings_.warnings)
