"""FastAPI's automatic export under our instrumentation: it adds its exporters only to the
providers the user gave the application, never to the global ones (ours under the
launcher, which export already). The end-to-end case: tests/e2e/test_fastapi_auto_configure_e2e."""

from __future__ import annotations

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider

from telemetryflow_bootstrap.instrumentation import starlette as ours

runtime = pytest.importorskip("fastapi.telemetry._runtime")


def _config(**given: object) -> dict[str, object]:
    return {"tracer_provider": None, "meter_provider": None, "logger_provider": None,
            "tracing": True, "metrics": True, "logs": True, "operation_spans": True,
            "auto_configure": True, "exclude": None, **given}


@pytest.fixture(autouse=True)
def _endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # (nothing listens there: no test exports anything)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    ours._no_second_exporters()


def _processors(provider: TracerProvider) -> int:
    return len(provider._active_span_processor._span_processors)


def test_the_users_own_provider_still_gets_fastapis_exporter() -> None:
    own = TracerProvider()
    global_tracer, global_meter = trace.get_tracer_provider(), metrics.get_meter_provider()
    before = _processors(own)
    try:
        runtime._configure_from_environment(_config(tracer_provider=own))
        assert _processors(own) == before + 1
        # the signals without a provider of the user's were not configured on the globals
        assert trace.get_tracer_provider() is global_tracer
        assert metrics.get_meter_provider() is global_meter
    finally:
        own.shutdown()


def test_the_global_providers_get_nothing_and_it_is_said_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    global_tracer, global_meter = trace.get_tracer_provider(), metrics.get_meter_provider()
    ours._said.discard("fastapi-auto-configure")
    for _ in range(2):
        runtime._configure_from_environment(_config())
    assert trace.get_tracer_provider() is global_tracer
    assert metrics.get_meter_provider() is global_meter
    said = [line for line in capsys.readouterr().err.splitlines()
            if "FASTAPI_OTEL_AUTO_CONFIGURE" in line]
    assert len(said) == 1, said


def test_without_auto_configure_fastapi_is_left_to_itself() -> None:
    """``auto_configure`` off: FastAPI's own function runs (and does nothing)."""
    global_tracer = trace.get_tracer_provider()
    runtime._configure_from_environment(_config(auto_configure=False))
    assert trace.get_tracer_provider() is global_tracer
    assert getattr(runtime._configure_from_environment, "_telemetryflow_original", None)
