"""Property: any uwsgi.opt content is either accepted or rejected with the one-line ConfigError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_uwsgi.config.options import BY_NAME
from otel_uwsgi.config.settings import ConfigError, load

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


# -- the cases issue 4 names: bytes that are not UTF-8, repeated options, empty values

surrogate_text = st.text(alphabet=st.characters(codec=None, categories=("Cs", "L", "N")), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([o for o in BY_NAME.values() if o.env]), surrogate_text)
def test_environment_values_that_are_not_utf8_are_ignored_with_one_warning(option, raw):
    """os.environ carries non-UTF-8 bytes as surrogates; such a value would break every export
    (protobuf and HTTP need valid text), so it is one warning and the default applies."""
    settings_ = load({}, {option.env: raw})
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        assert settings_.source(option.name) == "default"
        assert any(option.env in w and "not valid UTF-8" in w and "\n" not in w for w in settings_.warnings)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(BY_NAME)), st.binary(min_size=1, max_size=20))
def test_ini_bytes_that_are_not_utf8_are_one_line_naming_the_option(name, raw):
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            load({name: raw}, {})
        except ConfigError as exc:
            assert f"invalid value for {name} " in str(exc) and "not valid UTF-8" in str(exc)
            assert "\n" not in str(exc)
        else:
            raise AssertionError("non-UTF-8 bytes accepted")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(BY_NAME)), st.sampled_from([b"", b" ", b"\t", [b""], [b"x", b""]]))
def test_an_empty_ini_value_means_unset(name, empty):
    """`otel-foo =` (also as the last of repeated keys) is as if absent: environment, then default."""
    option = BY_NAME[name]
    settings_ = load({name: empty}, {})
    assert settings_.source(name) == "default" and settings_[name] == option.default
    if option.env:
        fallback = load({name: empty}, {option.env: "x"})
        assert fallback.source(name) == "env" or any(option.env in w for w in fallback.warnings)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["shop", "cart", "billing"]), min_size=2, max_size=4))
def test_a_repeated_option_keeps_its_last_value(names):
    """uWSGI 2.0.x keeps only the last of a repeated key; where a list arrives, the last item wins too."""
    settings_ = load({"otel-service-name": [n.encode() for n in names]}, {})
    assert settings_["otel-service-name"] == names[-1]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=24), st.sampled_from([
    "authorization=Bearer%20{s},bad header=x", "{s}", "x-key={s}%0A", "x-key={s},=y", "é={s}",
]))
def test_header_values_never_appear_in_messages(secret, shape):
    """An invalid headers option, in the ini or the environment, is reported without its values."""
    value = shape.format(s=secret)
    for name in ("otel-exporter-otlp-headers", "otel-exporter-otlp-traces-headers"):
        try:
            load({name: value.encode()}, {})
        except ConfigError as exc:
            assert secret not in str(exc)
        env = BY_NAME[name].env
        assert all(secret not in w for w in load({}, {env: value}).warnings)
