"""The public API: exactly the documented names, each resolving lazily to the real object."""

from __future__ import annotations

import importlib

import pytest

import telemetryflow_bootstrap

DOCUMENTED = {
    "TelemetryFlowBuilder": "telemetryflow_bootstrap.builder",
    "TelemetryFlowClient": "telemetryflow_bootstrap.client",
    "get_client": "telemetryflow_bootstrap.client",
    "TelemetryConfig": "telemetryflow_bootstrap.domain.config",
    "Credentials": "telemetryflow_bootstrap.domain.credentials",
    "Protocol": "telemetryflow_bootstrap.domain.signals",
    "SignalType": "telemetryflow_bootstrap.domain.signals",
    "TelemetryFlowError": "telemetryflow_bootstrap.domain.errors",
    "ConfigError": "telemetryflow_bootstrap.domain.errors",
    "CredentialsError": "telemetryflow_bootstrap.domain.errors",
    "BuilderError": "telemetryflow_bootstrap.domain.errors",
    "NotInitializedError": "telemetryflow_bootstrap.domain.errors",
    "__version__": "telemetryflow_bootstrap._version",
}


def test_all_is_exactly_the_documented_set() -> None:
    """__all__ lists the documented names, no more and no fewer, without duplicates."""
    assert sorted(telemetryflow_bootstrap.__all__) == sorted(DOCUMENTED)
    assert len(set(telemetryflow_bootstrap.__all__)) == len(telemetryflow_bootstrap.__all__)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_public_name_resolves_to_its_defining_object(name: str) -> None:
    """Every public name resolves from the package to the object its module defines."""
    defining_module = importlib.import_module(DOCUMENTED[name])
    assert getattr(telemetryflow_bootstrap, name) is getattr(defining_module, name)


def test_star_import_gives_the_public_names() -> None:
    """``from telemetryflow_bootstrap import *`` binds every name in __all__."""
    namespace: dict[str, object] = {}
    exec("from telemetryflow_bootstrap import *", namespace)
    assert set(DOCUMENTED) <= set(namespace)


def test_version_is_a_nonempty_string() -> None:
    """__version__ is available without importing anything heavy."""
    assert isinstance(telemetryflow_bootstrap.__version__, str)
    assert telemetryflow_bootstrap.__version__


def test_unknown_attribute_raises_attribute_error() -> None:
    """A name that is not public is an AttributeError naming it."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        telemetryflow_bootstrap.no_such_thing  # noqa: B018


def test_dir_lists_the_public_names() -> None:
    """dir() of the package shows the public API."""
    assert set(DOCUMENTED) <= set(dir(telemetryflow_bootstrap))
