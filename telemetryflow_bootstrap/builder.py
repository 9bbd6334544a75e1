"""``TelemetryFlowBuilder``: fluent construction of a ``TelemetryFlowClient``.

``with_auto_configuration()`` reads the environment with the very parser the launcher uses;
explicit ``with_*`` calls win over it whatever their order (``with_endpoint()`` over
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT too: code says what it means for every signal).
``build()`` reports every missing or invalid field at once: an argument of the wrong type
too (``with_endpoint(4317)``, ``with_signals(metrics="no")``), named with the method, the value
(a secret never) and what is expected, rather than failing deep inside or being taken for
true.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from .client import TelemetryFlowClient
from .domain import per_signal, signal_batches
from .domain.config import TelemetryConfig, load_config
from .domain.credentials import Credentials
from .domain.errors import BuilderError, ConfigError
from .domain.signals import Protocol


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class TelemetryFlowBuilder:
    def __init__(self) -> None:
        # (keyed by the setting: a later valid call of the same method replaces the problem)
        self._problems: dict[str, str] = {}
        self._fields: dict[str, Any] = {}
        self._attributes: dict[str, str] = {}
        self._api_key: tuple[str, str] | None = None
        self._collector_id: str | None = None
        self._environ: Mapping[str, str] | None = None
        self._exporters: Any = None

    def _check(self, setting: str, ok: bool, call: str, expected: str) -> bool:
        """Note (or clear) the problem of ``setting``; True when ``ok``."""
        if ok:
            self._problems.pop(setting, None)
        else:
            self._problems[setting] = f"{call}: expected {expected}"
        return ok

    def with_api_key(self, key_id: str, key_secret: str) -> TelemetryFlowBuilder:
        id_ok = isinstance(key_id, str)
        secret_ok = isinstance(key_secret, str)
        wrong = ([f"key_id={_shown(key_id)}"] if not id_ok else []) + (
            [f"key_secret=<{type(key_secret).__name__}>"] if not secret_ok else [])
        if self._check("api_key", id_ok and secret_ok, f"with_api_key({', '.join(wrong)})",
                       "strings: the key id ('tfk_...') and its secret ('tfs_...')"):
            self._api_key = (key_id, key_secret)
        return self

    def with_collector_id(self, collector_id: str) -> TelemetryFlowBuilder:
        if self._check("collector_id", isinstance(collector_id, str),
                       f"with_collector_id({_shown(collector_id)})", "a string"):
            self._collector_id = collector_id
        return self

    def with_endpoint(self, endpoint: str) -> TelemetryFlowBuilder:
        # (a bad string is the config's to judge, with the URL's password redacted)
        if self._check("endpoint", isinstance(endpoint, str), f"with_endpoint({_shown(endpoint)})",
                       "a string: host:port, http://host:port or https://host:port"):
            self._fields["endpoint"] = endpoint
        return self

    def with_service(
        self, name: str, version: str | None = None, namespace: str | None = None
    ) -> TelemetryFlowBuilder:
        self._fields["service_name"] = name  # (checked by the config: "expected a name")
        for setting, value in (("version", version), ("namespace", namespace)):
            if self._check(f"service_{setting}", value is None or isinstance(value, str),
                           f"with_service({setting}={_shown(value)})", "a string or None") \
                    and value is not None:
                self._fields[f"service_{setting}"] = value
        return self

    def with_environment(self, environment: str) -> TelemetryFlowBuilder:
        if self._check("environment", isinstance(environment, str),
                       f"with_environment({_shown(environment)})", "a string, e.g. 'production'"):
            self._fields["environment"] = environment
        return self

    def with_grpc(self) -> TelemetryFlowBuilder:
        self._fields["protocol"] = Protocol.GRPC
        return self

    def with_http(self) -> TelemetryFlowBuilder:
        self._fields["protocol"] = Protocol.HTTP
        return self

    def with_insecure(self, insecure: bool = True) -> TelemetryFlowBuilder:
        if self._check("insecure", isinstance(insecure, bool), f"with_insecure({_shown(insecure)})",
                       "True or False"):
            self._fields["insecure"] = insecure
        return self

    def with_signals(
        self, *, metrics: bool | None = None, logs: bool | None = None, traces: bool | None = None
    ) -> TelemetryFlowBuilder:
        for name, value in (("metrics", metrics), ("logs", logs), ("traces", traces)):
            # (a string such as "no" would otherwise be taken for True)
            if self._check(f"enable_{name}", value is None or isinstance(value, bool),
                           f"with_signals({name}={_shown(value)})", "True, False or None") \
                    and value is not None:
                self._fields[f"enable_{name}"] = value
        return self

    def with_compression(self, enabled: bool | str = True) -> TelemetryFlowBuilder:
        if not self._check("compression", isinstance(enabled, (bool, str)),
                           f"with_compression({_shown(enabled)})", "True, False, 'gzip' or 'none'"):
            return self
        if isinstance(enabled, str):
            self._fields["compression"] = enabled.lower()
        else:
            self._fields["compression"] = "gzip" if enabled else "none"
        return self

    def with_timeout(self, seconds: float) -> TelemetryFlowBuilder:
        self._fields["timeout"] = seconds
        return self

    def with_batch_settings(
        self,
        *,
        timeout_ms: int | None = None,
        max_size: int | None = None,
        max_queue_size: int | None = None,
    ) -> TelemetryFlowBuilder:
        for name, value in (
            ("batch_timeout_ms", timeout_ms),
            ("batch_max_size", max_size),
            ("max_queue_size", max_queue_size),
        ):
            if value is not None:
                self._fields[name] = value
        return self

    def with_exporter(self, kind: str) -> TelemetryFlowBuilder:
        self._fields["exporter"] = kind
        return self

    def with_sample_rate(self, rate: float) -> TelemetryFlowBuilder:
        self._fields["sample_rate"] = rate
        self._fields.setdefault("sampler", "parentbased_traceidratio")
        return self

    def with_custom_attribute(self, key: str, value: Any) -> TelemetryFlowBuilder:
        """A resource attribute (sent as a string, as OTEL_RESOURCE_ATTRIBUTES values are)."""
        ok = isinstance(key, str) and bool(key.strip()) \
            and isinstance(value, (str, bool, int, float))
        if self._check(f"attribute {key!r}", ok,
                       f"with_custom_attribute({_shown(key)}, {_shown(value)})",
                       "a non-empty string key and a str, bool, int or float value"):
            self._attributes[key] = str(value)
        return self

    def with_custom_attributes(self, attributes: Mapping[str, Any]) -> TelemetryFlowBuilder:
        if self._check("custom_attributes", isinstance(attributes, Mapping),
                       f"with_custom_attributes({_shown(attributes)})",
                       "a mapping of attribute names to values"):
            for key, value in attributes.items():
                self.with_custom_attribute(key, value)
        return self

    def with_auto_configuration(
        self, environ: Mapping[str, str] | None = None
    ) -> TelemetryFlowBuilder:
        """Read ``TELEMETRYFLOW_*``/``OTEL_*`` like the launcher; explicit calls still win."""
        if self._check("environ", environ is None or isinstance(environ, Mapping),
                       f"with_auto_configuration(environ={_shown(environ)})",
                       "a mapping of variable names to values, or None for os.environ"):
            self._environ = os.environ if environ is None else environ
        return self

    def with_exporters(self, exporters: Any) -> TelemetryFlowBuilder:
        """Use these exporters instead (``ExporterOverrides``; tests and embedding)."""
        ok = exporters is None or all(
            hasattr(exporters, name) for name in ("span_exporter", "metric_reader", "log_exporter"))
        if self._check("exporters", ok, f"with_exporters({_shown(exporters)})",
                       "an ExporterOverrides(span_exporter=..., metric_exporter=..., "
                       "metric_reader=..., log_exporter=...) or None"):
            self._exporters = exporters
        return self

    def build_config(self) -> TelemetryConfig:
        problems: list[str] = list(self._problems.values())
        base = TelemetryConfig()
        if self._environ is not None:
            base, reading = load_config(self._environ)
            problems.extend(str(p) for p in reading.problems)
        elif "service_name" not in self._fields:
            problems.append("service name is missing: call with_service(name)")
        fields = {**signal_batches.cleared_by(self._fields), **self._fields}
        for signal in per_signal.SIGNALS:  # (an explicit setting is every signal's)
            own = base.overrides(signal)
            cleared = {name: None for name in own.given() if name in fields}
            if cleared:
                fields[per_signal.group(signal)] = dataclasses.replace(own, **cleared)
        if self._attributes:
            fields["resource_attributes"] = (*base.resource_attributes, *self._attributes.items())
        if self._api_key is not None or self._collector_id is not None:
            key_id, secret = self._api_key or (None, None)
            if key_id is None and base.credentials is not None:
                key_id, secret = base.credentials.key_id, base.credentials.key_secret
            if key_id is None:
                problems.append("collector id given without an API key: call with_api_key()")
            else:
                try:
                    fields["credentials"] = Credentials(
                        key_id,
                        secret or "",
                        self._collector_id
                        or (base.credentials.collector_id if base.credentials else None),
                    )
                except ConfigError as exc:
                    problems.extend(str(p) for p in exc.problems)
        try:
            config = base.replace(**fields)
        except ConfigError as exc:
            problems.extend(str(p) for p in exc.problems)
            config = base
        except TypeError as exc:
            problems.append(str(exc))
            config = base
        if problems:
            raise BuilderError(problems)
        return config

    def build(self) -> TelemetryFlowClient:
        """A client for the configured service (not yet initialised)."""
        return TelemetryFlowClient(self.build_config(), exporters=self._exporters)
