"""The value objects of ``domain._values`` (the config, its parts, the commands, the registry
entries) behave as the dataclasses they replaced, and the start-up no longer pays for
``dataclasses``."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import subprocess
import sys

import pytest

from telemetryflow_bootstrap.application import commands as c
from telemetryflow_bootstrap.application import queries as q
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.domain.credentials import Credentials
from telemetryflow_bootstrap.domain.environment import EnvironmentReading, Variable
from telemetryflow_bootstrap.domain.per_signal import NO_OVERRIDES, SignalOverrides
from telemetryflow_bootstrap.domain.signal_batches import BatchSettings
from telemetryflow_bootstrap.domain.signals import Protocol
from telemetryflow_bootstrap.infrastructure import handler
from telemetryflow_bootstrap.instrumentation.registry import Instrumentation, PatchContext

_CONFIG = TelemetryConfig(
    endpoint="collector:4317", service_name="shop", headers=(("x-tenant", "t1"),),
    credentials=Credentials("tfk_id", "tfs_secret"),
    traces_otlp=SignalOverrides(endpoint="tempo:4317", headers=(("x-own", "o1"),)))


def test_config_fields_are_those_of_the_dataclass_in_order() -> None:
    """``dataclasses.fields`` lists every field with its default, headers not shown."""
    fields = dataclasses.fields(TelemetryConfig)
    assert [f.name for f in fields][:3] == ["endpoint", "credentials", "service_name"]
    assert [f.name for f in fields][-3:] == ["traces_otlp", "metrics_otlp", "logs_otlp"]
    assert len(fields) == len(TelemetryConfig._FIELDS) == 51
    defaults = {f.name: f.default for f in fields}
    assert defaults["service_name"] == "python-app"
    assert defaults["propagators"] == ("tracecontext", "baggage")
    assert defaults["traces_otlp"] is NO_OVERRIDES
    assert [f.name for f in fields if not f.repr] == ["headers"]
    assert dataclasses.is_dataclass(_CONFIG)


def test_config_replace_equality_hash_and_copies() -> None:
    """Copies compare and hash equal; ``replace`` (method or ``dataclasses.replace``)
    validates and changes only what it is given."""
    again = TelemetryConfig(**{name: getattr(_CONFIG, name) for name in _CONFIG._FIELDS})
    assert again == _CONFIG and hash(again) == hash(_CONFIG)
    assert pickle.loads(pickle.dumps(_CONFIG)) == _CONFIG
    assert copy.deepcopy(_CONFIG) == _CONFIG
    changed = dataclasses.replace(_CONFIG, service_name="cart")
    assert changed == _CONFIG.replace(service_name="cart") != _CONFIG
    assert changed.endpoint == _CONFIG.endpoint
    assert _CONFIG.replace(protocol="http").protocol is Protocol.HTTP  # (validated again)
    assert dataclasses.asdict(_CONFIG)["traces_otlp"]["endpoint"] == "tempo:4317"
    assert object() != _CONFIG and _CONFIG.__eq__(object()) is NotImplemented


def test_frozen_values_refuse_assignment_like_frozen_dataclasses() -> None:
    """Assigning or deleting a field raises ``FrozenInstanceError``; no attribute can be
    added either (slots)."""
    for value in (_CONFIG, _CONFIG.traces_otlp, _CONFIG.credentials, BatchSettings(1, 2, 3),
                  Variable("A", "a", str, "x", "help")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, value._FIELDS[0], None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(value, value._FIELDS[0])
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.anything_else = 1  # type: ignore[union-attr]
    assert not hasattr(_CONFIG, "__dict__")


def test_repr_hides_headers_and_the_secret() -> None:
    """``repr`` is the dataclass's, without the headers or the API key secret."""
    text = repr(_CONFIG)
    assert text.startswith("TelemetryConfig(endpoint='collector:4317', credentials="
                           "Credentials(key_id='tfk_id', collector_id=None), ")
    assert "t1" not in text and "o1" not in text and "tfs_secret" not in text
    assert "SignalOverrides(endpoint='tempo:4317', protocol=None" in text


def test_other_values_keep_their_constructors_and_equality() -> None:
    """Positional and keyword construction, defaults and equality of the other values."""
    assert BatchSettings(1, 2, 3) == BatchSettings(schedule_delay_ms=1, max_batch_size=2,
                                                   max_queue_size=3)
    assert BatchSettings(1, 2, 3).queue_size_variable == "TELEMETRYFLOW_MAX_QUEUE_SIZE"
    assert SignalOverrides(protocol="HTTP").protocol is Protocol.HTTP
    assert SignalOverrides(timeout=2.0).given() == ("timeout",)
    variable = Variable("A", "a", str, "x", "help")
    assert variable.fallbacks == () and variable.secret is False
    reading, other = EnvironmentReading(), EnvironmentReading()
    reading.values["a"] = 1
    assert reading != other and other.values == {} and other.problems is not reading.problems
    assert Instrumentation("x", ("x",), "m:patch").versions == ""
    assert PatchContext(1, 2, 3, 4, 5).handler == 5


def test_commands_are_slotted_records() -> None:
    """Commands compare by value, show their fields and take no other attribute; queries
    have no fields and are all equal."""
    one = c.RecordCounterCommand("hits", 2, {"a": 1})
    assert one == c.RecordCounterCommand(name="hits", value=2, attributes={"a": 1})
    assert one != c.RecordCounterCommand("hits", 3)
    assert repr(one) == ("RecordCounterCommand(name='hits', value=2, attributes={'a': 1}, "
                         "unit='', description='')")
    with pytest.raises(AttributeError):
        one.other = 1  # type: ignore[attr-defined]
    one.value = 5  # (mutable, as the slotted dataclass was)
    assert one.value == 5
    assert c.ShutdownSDKCommand().timeout_seconds == 5.0
    assert q.GetHealthQuery() == q.GetHealthQuery() and repr(q.GetSDKStatusQuery()) == \
        "GetSDKStatusQuery()"
    assert handler.ExporterOverrides() == handler.ExporterOverrides(None, None, None, None)


def test_a_dataclass_may_subclass_a_record() -> None:
    """``@dataclass`` on a subclass sees the record's fields as inherited ones."""

    @dataclasses.dataclass
    class Named(c.EndSpanCommand):
        label: str = "x"

    named = Named("abc")
    assert (named.span_id, named.error, named.label) == ("abc", None, "x")


def test_unencodable_counts_have_the_encoders_keys_before_any_export() -> None:
    """The final status lists the encoders' counts whether or not they were imported."""
    from telemetryflow_bootstrap.infrastructure import otlp_wire

    assert set(handler._WIRE_COUNTS) == set(otlp_wire.unencodable_counts())
    assert "metric_values_sent_as_double" in handler._unencodable_counts()


def test_the_start_up_modules_do_not_import_dataclasses() -> None:
    """The config, the commands, the client and the registry (what the hook imports of ours
    before OpenTelemetry) load no ``dataclasses`` (with ``inspect``, ``ast``, ``dis``...)."""
    code = ("import json, sys, os\n"
            "import telemetryflow_bootstrap.client, telemetryflow_bootstrap.lifecycle\n"
            "from telemetryflow_bootstrap.instrumentation import registry\n"
            "from telemetryflow_bootstrap.domain.config import load_config\n"
            "load_config(os.environ)\n"
            "registry._catalog()\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    modules = json.loads(done.stdout)
    assert "telemetryflow_bootstrap.domain.config" in modules
    assert "dataclasses" not in modules
