"""The OpenTelemetry Resource describing this process.

Built directly from the config rather than with ``Resource.create()``: that runs resource
detectors found through entry points (a scan we do not want at start-up) and would fall back
to ``unknown_service``. ``OTEL_RESOURCE_ATTRIBUTES`` is already part of the config.
"""

from __future__ import annotations

import os
import platform
import socket
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.version import __version__ as _sdk_version

from .._version import __version__
from ..domain.config import TelemetryConfig


def build_resource(config: TelemetryConfig) -> Resource:
    attributes: dict[str, str | int] = dict(config.resource_attributes)
    attributes.update(
        {
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": _sdk_version,
            "telemetry.distro.name": "telemetryflow",
            "telemetry.distro.version": __version__,
            "service.name": config.service_name,
            "process.pid": os.getpid(),
            "process.runtime.name": sys.implementation.name,
            "process.runtime.version": platform.python_version(),
        }
    )
    attributes.setdefault("host.name", socket.gethostname())
    if config.service_version:
        attributes["service.version"] = config.service_version
    if config.service_namespace:
        attributes["service.namespace"] = config.service_namespace
    if config.environment:
        attributes["deployment.environment"] = config.environment
        attributes["deployment.environment.name"] = config.environment
    return Resource(attributes)
