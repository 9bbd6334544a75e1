"""``watch(exporter)``: the SDK's OTLP exporters (gRPC and HTTP; spans, metrics, logs) told
whether their backend can be reached, and giving up at once at exit when it cannot.

See ``reachability`` for the why. The exporter keeps its own retry loop: we see each
attempt (gRPC: the stub's ``Export`` call; HTTP: the transport's ``request``), record
whether the backend was reachable, and during a final flush turn an unreachable attempt
into one the loop does not retry:

- gRPC: UNAVAILABLE while the channel is in TRANSIENT_FAILURE is a connection that could
  not be made (refused, no such host, no route; a live server answering UNAVAILABLE leaves
  it READY, a blackholed one CONNECTING). The give-up is an UNAVAILABLE whose RetryInfo
  asks for a delay past any deadline: the loop, which honours RetryInfo, stops there.
- HTTP: the socket error under requests' ``ConnectionError`` (``reachability``). The
  give-up is an error the transport does not call a connection error: not retried.
- The retry loop's backoff waits on the exporter's shutdown event: ours
  (``InterruptibleBackoff``) also ends the wait when a final flush starts while the
  backend is unreachable.

What the exporter logs about a batch we gave up on is left unsaid: the exit warning says
it once, with the counts. An exporter laid out otherwise (another SDK version) is left as
it is: it then retries at exit as it always did.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from .. import _diagnostics
from ..domain.redaction import redact_url
from . import reachability
from .reachability import Backend, InterruptibleBackoff, final_exports_running

_NEVER_SECONDS = 10**9  # a RetryInfo delay past any export deadline
_quiet = threading.local()  # .on: this thread just gave up an attempt (see _QuietGiveUps)


def watch(exporter: Any) -> Any:
    """``exporter``, watched if it is one of the SDK's OTLP exporters (else unchanged).
    Never raises: an exporter we cannot watch exports as it always did."""
    try:
        if _is_grpc(exporter):
            _watch_grpc(exporter)
        elif _is_http(exporter):
            _watch_http(exporter)
    except Exception as exc:
        _diagnostics.debug(f"cannot watch {type(exporter).__name__}'s backend: {exc!r}")
    return exporter


def backend_of(exporter: Any) -> Backend | None:
    """The backend a watched exporter sends to (None if it is not watched)."""
    found = getattr(exporter, "_telemetryflow_backend", None)
    return found if isinstance(found, Backend) else None


class BackendUnreachable(Exception):
    """An HTTP export given up at exit (its message says which backend, and why)."""


# ----- gRPC ------------------------------------------------------------------------------

def _is_grpc(exporter: Any) -> bool:
    return all(hasattr(exporter, name) for name in (
        "_stub", "_channel", "_client", "_endpoint", "_shutdown_in_progress",
        "_initialize_channel_and_stub"))


def _watch_grpc(exporter: Any) -> None:
    target = reachability.backend(redact_url(str(exporter._endpoint)))
    make_stub = exporter._stub

    def watched_stub(channel: Any) -> Any:  # (the exporter builds it anew on reconnect)
        stub = make_stub(channel)
        stub.Export = _watched_call(stub.Export, channel, target)
        return stub

    exporter._stub = watched_stub
    exporter._client = watched_stub(exporter._channel)
    exporter._shutdown_in_progress = InterruptibleBackoff(
        target, exporter._shutdown_in_progress.is_set())
    exporter._telemetryflow_backend = target
    _quiet_loggers(exporter)


def _watched_call(call: Any, channel: Any, target: Backend) -> Any:
    import grpc

    def export(*args: Any, **kwargs: Any) -> Any:
        _quiet.on = False
        if target.known_unreachable_at_exit():
            raise _give_up(target)
        try:
            response = call(*args, **kwargs)
        except grpc.RpcError as error:
            reason = _grpc_reason(error, channel)
            target.record(reason)
            if reason is not None and final_exports_running():
                raise _give_up(target) from error
            raise
        target.record(None)
        return response

    return export


def _grpc_reason(error: Any, channel: Any) -> str | None:
    import grpc

    try:
        code, details = error.code(), str(error.details() or "")
    except Exception:
        return None
    if code is not grpc.StatusCode.UNAVAILABLE:
        return None
    state = channel_state(channel)
    if state is None:  # (cannot tell: then only gRPC's words for a failed connection)
        connecting = ("failed to connect", "errors resolving", "dns resolution failed")
        if not any(words in details.lower() for words in connecting):
            return None
    elif state is not grpc.ChannelConnectivity.TRANSIENT_FAILURE:
        return None
    return reachability.reason_for_grpc_details(details)


def channel_state(channel: Any) -> Any:
    """The channel's connectivity state now (a ``grpc.ChannelConnectivity``), without
    starting a connection; None if this grpc does not tell. (The public way, ``subscribe``,
    reports it later, from a thread of its own per channel.)"""
    try:
        from grpc import _common

        raw = channel._channel.check_connectivity_state(False)
        return _common.CYGRPC_CONNECTIVITY_STATE_TO_CHANNEL_CONNECTIVITY[raw]
    except Exception:
        return None


def _give_up(target: Backend) -> Exception:
    _quiet.on = True
    return _grpc_give_up_class()(target.message())


def not_retried(error: Any, *, quiet: bool) -> Exception:
    """``error`` (a ``grpc.RpcError``: its code and details) as one the exporter's retry
    loop does not retry, as for a give-up: RESOURCE_EXHAUSTED without RetryInfo, which the
    OTLP specification calls not retryable and the exporter retries until its deadline.
    ``quiet``: what the exporter logs about it is left unsaid (the caller says what
    matters: a request refused as too large is sent again in parts)."""
    if quiet:
        _quiet.on = True
    return _grpc_give_up_class()(str(error.details() or ""), error.code())


def quiet_this_attempt(on: bool = True) -> None:
    """What the exporter logs about the attempt this thread just made is left unsaid (an
    HTTP request refused with 413: the caller sends its items again, or says what it left
    out); ``on=False`` ends that before the next attempt would."""
    _quiet.on = on


@functools.cache
def _grpc_give_up_class() -> type:
    import grpc
    from google.rpc.error_details_pb2 import RetryInfo

    info = RetryInfo()
    info.retry_delay.seconds = _NEVER_SECONDS
    never = (("google.rpc.retryinfo-bin", info.SerializeToString()),)

    class GaveUp(grpc.RpcError):
        """UNAVAILABLE (or ``code``), not to be retried within any deadline (see the
        module doc)."""

        def __init__(self, message: str, code: Any = grpc.StatusCode.UNAVAILABLE) -> None:
            super().__init__(message)
            self._message = message
            self._code = code

        def code(self) -> Any:
            return self._code

        def details(self) -> str:
            return self._message

        def initial_metadata(self) -> tuple[Any, ...]:
            return ()

        def trailing_metadata(self) -> tuple[Any, ...]:
            return never

        def debug_error_string(self) -> str:
            return self._message

    return GaveUp


# ----- HTTP ------------------------------------------------------------------------------

def _is_http(exporter: Any) -> bool:
    client = getattr(exporter, "_client", None)
    return all(hasattr(client, name) for name in ("_transport", "_shutdown_event", "_endpoint"))


def _watch_http(exporter: Any) -> None:
    client = exporter._client
    parts = urlsplit(str(client._endpoint))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    display = f"{parts.scheme}://{host}:{parts.port or default_port}"
    target = reachability.backend(display)
    client._transport = _WatchedTransport(client._transport, target)
    client._shutdown_event = InterruptibleBackoff(target, client._shutdown_event.is_set())
    exporter._telemetryflow_backend = target
    _quiet_loggers(exporter)


class _WatchedTransport:
    """The exporter's HTTP transport, each request's outcome recorded (see the module doc);
    anything else (its session, which the factory pins) is the transport's."""

    def __init__(self, inner: Any, target: Backend) -> None:
        self._inner = inner
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # (not set yet: a copy being made)
            raise AttributeError(name)
        return getattr(self._inner, name)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        target = self._target
        _quiet.on = False
        if target.known_unreachable_at_exit():
            return self._give_up()
        result = self._inner.request(method, url, **kwargs)
        reason = None
        if getattr(result, "status_code", None) is None:
            reason = reachability.reason_for_exception(getattr(result, "error", None))
        target.record(reason)
        if reason is not None and final_exports_running():
            return self._give_up()
        return result

    def _give_up(self) -> Any:
        _quiet.on = True
        return _GaveUpResult(BackendUnreachable(self._target.message()))

    def is_connection_error(self, exception: Exception | None) -> bool:
        return bool(self._inner.is_connection_error(exception))

    def close(self) -> None:
        self._inner.close()


class _GaveUpResult:
    """A request given up without an answer: what the exporter reads of a result."""

    status_code = None
    reason = None

    def __init__(self, error: Exception) -> None:
        self.error = error

    def content(self) -> bytes:
        return b""

    def text(self) -> str:
        return ""

    def headers(self) -> dict[str, str]:
        return {}


# ----- the exporter's own log lines ------------------------------------------------------

class _QuietGiveUps(logging.Filter):
    """Drops what an exporter logs about an attempt this thread just gave up (its "Failed
    to export …"): the exit warning says it once, for all of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


_FILTER = _QuietGiveUps()


def _quiet_loggers(exporter: Any) -> None:
    """On the loggers of the exporter's modules (the gRPC retry loop's, the HTTP client's):
    a filter applies only to records logged to its own logger, not to its children's."""
    names = {cls.__module__ for cls in type(exporter).__mro__
             if cls.__module__.startswith("opentelemetry.exporter")}
    loggers = [logging.getLogger(name) for name in names]
    client_logger = getattr(getattr(exporter, "_client", None), "_logger", None)
    if isinstance(client_logger, logging.Logger):
        loggers.append(client_logger)
    for logger in loggers:
        logger.addFilter(_FILTER)  # (adding the same filter again does nothing)
