"""``TelemetryFlowBuilder``: fluent construction of a ``TelemetryFlowClient``.

``with_auto_configuration()`` reads the environment with the very parser the launcher uses;
explicit ``with_*`` calls win over it whatever their order (``with_endpoint()`` over
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT too: code says what it means for every signal).
``build()`` reports every missing or invalid field at once.
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


class TelemetryFlowBuilder:
    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}
        self._attributes: dict[str, str] = {}
        self._api_key: tuple[str, str] | None = None
        self._collector_id: str | None = None
        self._environ: Mapping[str, str] | None = None
        self._exporters: Any = None

    def with_api_key(self, key_id: str, key_secret: str) -> TelemetryFlowBuilder:
        self._api_key = (key_id, key_secret)
        return self

    def with_collector_id(self, collector_id: str) -> TelemetryFlowBuilder:
        self._collector_id = collector_id
        return self

    def with_endpoint(self, endpoint: str) -> TelemetryFlowBuilder:
        self._fields["endpoint"] = endpoint
        return self

    def with_service(
        self, name: str, version: str | None = None, namespace: str | None = None
    ) -> TelemetryFlowBuilder:
        self._fields["service_name"] = name
        if version is not None:
            self._fields["service_version"] = version
        if namespace is not None:
            self._fields["service_namespace"] = namespace
        return self

    def with_environment(self, environment: str) -> TelemetryFlowBuilder:
        self._fields["environment"] = environment
        return self

    def with_grpc(self) -> TelemetryFlowBuilder:
        self._fields["protocol"] = Protocol.GRPC
        return self

    def with_http(self) -> TelemetryFlowBuilder:
        self._fields["protocol"] = Protocol.HTTP
        return self

    def with_insecure(self, insecure: bool = True) -> TelemetryFlowBuilder:
        self._fields["insecure"] = insecure
        return self

    def with_signals(
        self, *, metrics: bool | None = None, logs: bool | None = None, traces: bool | None = None
    ) -> TelemetryFlowBuilder:
        for name, value in (("metrics", metrics), ("logs", logs), ("traces", traces)):
            if value is not None:
                self._fields[f"enable_{name}"] = value
        return self

    def with_compression(self, enabled: bool | str = True) -> TelemetryFlowBuilder:
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
        self._attributes[str(key)] = str(value)
        return self

    def with_custom_attributes(self, attributes: Mapping[str, Any]) -> TelemetryFlowBuilder:
        for key, value in attributes.items():
            self.with_custom_attribute(key, value)
        return self

    def with_auto_configuration(
        self, environ: Mapping[str, str] | None = None
    ) -> TelemetryFlowBuilder:
        """Read ``TELEMETRYFLOW_*``/``OTEL_*`` like the launcher; explicit calls still win."""
        self._environ = os.environ if environ is None else environ
        return self

    def with_exporters(self, exporters: Any) -> TelemetryFlowBuilder:
        """Use these exporters instead (``ExporterOverrides``; tests and embedding)."""
        self._exporters = exporters
        return self

    def build_config(self) -> TelemetryConfig:
        problems: list[str] = []
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
