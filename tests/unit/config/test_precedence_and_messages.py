"""Option parsing, precedence and validation: every error message the user can meet."""

from __future__ import annotations

import pytest

from otel_uwsgi.config.options import BY_NAME, OPTIONS
from otel_uwsgi.config.settings import ConfigError, load, suggest


def test_defaults_without_any_configuration():
    """With nothing set, every option has its documented default and source 'default'."""
    settings = load({}, {})
    assert settings["otel-service-name"] == "unknown_service"
    assert settings["otel-exporter-otlp-compression"] == "gzip"
    assert settings["otel-bsp-max-queue-size"] == 2048
    assert settings["otel-instrumentations"] == ("auto",)
    assert all(settings.source(o.name) == "default" for o in OPTIONS)


@pytest.mark.parametrize("value", [b"shop", "shop", [b"other", b"shop"], ["shop"]])
def test_uwsgi_value_types(value):
    """uwsgi.opt gives bytes, str or (repeated key) a list: the last value wins."""
    assert load({"otel-service-name": value}, {})["otel-service-name"] == "shop"


def test_flag_true_means_true_for_booleans():
    """A bare flag arrives as True and means 'true'."""
    assert load({"otel-sdk-disabled": True}, {})["otel-sdk-disabled"] is True


def test_uwsgi_beats_environment_beats_default():
    """Precedence: uwsgi option > environment variable > default, with the source recorded."""
    env = {"OTEL_SERVICE_NAME": "from-env", "OTEL_BSP_MAX_QUEUE_SIZE": "100"}
    settings = load({"otel-service-name": b"from-ini"}, env)
    assert settings["otel-service-name"] == "from-ini" and settings.source("otel-service-name") == "uwsgi"
    assert settings["otel-bsp-max-queue-size"] == 100 and settings.source("otel-bsp-max-queue-size") == "env"
    assert settings.source("otel-bsp-schedule-delay") == "default"


def test_empty_values_mean_unset():
    """An empty ini value or environment variable falls through to the next source."""
    settings = load({"otel-service-name": b""}, {"OTEL_SERVICE_NAME": "env"})
    assert settings["otel-service-name"] == "env"
    assert load({}, {"OTEL_SERVICE_NAME": "  "})["otel-service-name"] == "unknown_service"


def test_ini_generic_beats_env_specific():
    """The user's ini wins over the shared environment even against a more specific variable."""
    settings = load(
        {"otel-exporter-otlp-endpoint": b"http://ini:4318"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:4318/v1/traces"},
    )
    assert settings.pick("otel-exporter-otlp-traces-endpoint", "otel-exporter-otlp-endpoint") == (
        "otel-exporter-otlp-endpoint",
        "http://ini:4318",
    )


def test_specific_beats_generic_from_same_source():
    """Within one source, the traces-specific option wins, as in the SDK."""
    settings = load({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:2/x"})
    assert settings.pick("otel-exporter-otlp-traces-endpoint", "otel-exporter-otlp-endpoint")[1] == "http://b:2/x"


@pytest.mark.parametrize(
    "name, value, accepted",
    [
        ("otel-exporter-otlp-compression", b"brotli", "gzip, none"),
        ("otel-bsp-max-queue-size", b"lots", "a whole number >= 1"),
        ("otel-bsp-schedule-delay", b"-5", "a whole number >= 0"),
        ("otel-exporter-otlp-endpoint", b"collector:4318", "http:// or https://"),
        ("otel-exporter-otlp-traces-endpoint", b"ftp://x/v1/traces", "http:// or https://"),
        ("otel-traces-sampler", b"sometimes", "parentbased_always_on"),
        ("otel-traces-sampler-arg", b"1.5", "a number >= 0 and <= 1"),
        ("otel-exporter-otlp-timeout", b"0", "a number > 0"),
        ("otel-sdk-disabled", b"maybe", "true or false"),
        ("otel-instrumentations", b"django,flask!", "a comma-separated list of names"),
        ("otel-instrumentations", b"auto,django", "alone"),
        ("otel-exporter-otlp-protocol", b"grpc", "http/protobuf"),
        ("otel-resource-attributes", b"team", "key=value"),
    ],
)
def test_invalid_ini_value_is_one_clear_line(name, value, accepted):
    """A bad ini value stops startup with one line: option, value, what is accepted."""
    with pytest.raises(ConfigError) as info:
        load({name: value}, {}, where="/etc/uwsgi/app.ini")
    message = str(info.value)
    assert "\n" not in message
    assert name in message and value.decode() in message and accepted in message
    assert "/etc/uwsgi/app.ini" in message


def test_unknown_option_suggests_closest_name():
    """A misspelt otel-* option names the closest real one."""
    with pytest.raises(ConfigError, match=r"unknown option otel-servce-name .*did you mean otel-service-name\?"):
        load({"otel-servce-name": b"x"}, {})
    assert suggest("otel-exporter-otlp-header") == "otel-exporter-otlp-headers"


def test_unknown_option_without_close_match_points_to_readme():
    with pytest.raises(ConfigError, match="option table"):
        load({"otel-zzzzzzzzzzzzzzzzzz": b"x"}, {})


def test_non_otel_uwsgi_options_are_ignored():
    """Only the otel- prefix is ours: uWSGI's own options pass through untouched."""
    assert load({"processes": b"4", "master": True}, {})["otel-service-name"] == "unknown_service"


def test_non_utf8_bytes_are_rejected_clearly():
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load({"otel-service-name": b"\xff\xfe"}, {})


def test_header_values_are_masked_in_errors():
    """A malformed header list is reported without its secret values."""
    with pytest.raises(ConfigError) as info:
        load({"otel-exporter-otlp-headers": b"authorization=Bearer%20s3cr3t,broken"}, {})
    assert "s3cr3t" not in str(info.value) and "Bearer" not in str(info.value)
    assert "authorization=***" in str(info.value)


def test_invalid_environment_warns_and_is_ignored():
    """A bad OTEL_* variable is one warning line (secrets masked) and falls back to the default."""
    settings = load({}, {"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli", "OTEL_EXPORTER_OTLP_HEADERS": "tok3n"})
    assert settings["otel-exporter-otlp-compression"] == "gzip"
    assert settings["otel-exporter-otlp-headers"] == {}
    assert len(settings.warnings) == 2
    text = "\n".join(settings.warnings)
    assert "OTEL_EXPORTER_OTLP_COMPRESSION='brotli'; accepted: gzip, none" in text
    assert "tok3n" not in text


def test_headers_are_percent_decoded_and_lowercased():
    settings = load({"otel-exporter-otlp-headers": b"Authorization=Bearer%20abc,x-team=a%2Cb"}, {})
    assert settings["otel-exporter-otlp-headers"] == {"authorization": "Bearer abc", "x-team": "a,b"}


def test_resource_attributes_parse():
    settings = load({}, {"OTEL_RESOURCE_ATTRIBUTES": "team=core,region=eu%20west"})
    assert settings["otel-resource-attributes"] == {"team": "core", "region": "eu west"}


def test_batch_larger_than_queue():
    """Batch size above queue size: fatal from the ini, a warning (clamped) from the environment."""
    with pytest.raises(ConfigError, match="otel-bsp-max-export-batch-size"):
        load({"otel-bsp-max-export-batch-size": b"4096"}, {})
    settings = load({}, {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"})
    assert settings["otel-bsp-max-export-batch-size"] == 2048 and settings.warnings


def test_every_default_passes_its_own_parser():
    """Each declared default is a value its parser could have produced (gunicorn's check)."""
    for option in OPTIONS:
        assert option.name.startswith("otel-")
        if option.env and not option.env.startswith("OTEL_UWSGI_"):
            assert option.env == option.name.upper().replace("-", "_")
    assert BY_NAME["otel-bsp-max-queue-size"].parse("2048") == BY_NAME["otel-bsp-max-queue-size"].default
    assert BY_NAME["otel-exporter-otlp-compression"].parse("gzip") == "gzip"
    assert BY_NAME["otel-instrumentations"].parse("auto") == ("auto",)
    assert BY_NAME["otel-propagators"].parse("tracecontext,baggage") == ("tracecontext", "baggage")
