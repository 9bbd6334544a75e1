"""The response body ``TelemetryWSGIMiddleware`` hands the server (``instrumentation.wsgi``):
the application's iterable, ending the request's server span once the body has gone out,
and letting the server see what it would have seen unwrapped: the body's ``len()`` (a
server sends a one-item body with a ``Content-Length``) and a ``wsgi.file_wrapper`` body
(a server sends the file its own way, by sendfile). See ``_ResponseBody`` and
``response_body`` for which server checks what.

Per response the middleware pays one dict lookup on the body's type (``body_classes``),
which replaced the list/tuple test the body used to make when iterated.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from ..infrastructure.current_context import attach as _attach
from ..infrastructure.current_context import reset as _reset
from ..middleware import _ServerRequest


class _ResponseBody:
    """The application's iterable, ending the server span once the body has gone out: when
    the server has taken the last chunk (the iterator is exhausted) or closes it, whichever
    comes first. Test clients that read the body but never close the response still get
    their span.

    The chunks come from a generator (``_chunks``), not from a ``__next__`` method: resuming
    a generator costs a fraction of a Python method call through the iterator slot, and its
    end reaches the server's loop without a ``StopIteration`` raised through our frame
    (measured: ~16k instructions per Flask request for the method, ~5k for the generator).

    This class has no ``__len__``: a server asks ``len()`` of the body (PEP 3333 allows it)
    and, when it is 1, sends the one chunk with a ``Content-Length`` (waitress tests
    ``hasattr(body, "__len__")``, then calls ``len()`` unguarded; wsgiref calls ``len()``
    and takes a ``TypeError`` for "unknown"). So a body without one is wrapped in this class
    and one with one in ``_SizedBody``, whose ``len()`` is the application's: the server
    frames the response as it would unwrapped (it used to send a one-chunk body chunked, or
    with no length and the connection closed)."""

    __slots__ = ("_body", "_iterator", "_request")

    def __init__(self, body: Iterable[bytes], request: _ServerRequest) -> None:
        self._body = body
        self._request = request
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = _chunks(iter(self._body), self._request)
        return self._iterator

    def __next__(self) -> bytes:  # a server that calls next() without iter() first
        if self._iterator is None:
            self.__iter__()
        return next(self._iterator)  # type: ignore[arg-type]

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as error:
            self._request.finish(error)
            raise
        self._request.finish()


class _SizedBody(_ResponseBody):
    """A body whose ``len()`` the server may ask (see ``_ResponseBody``): the application's,
    raising what it raises."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._body)  # type: ignore[arg-type]


class _ListBody(_SizedBody):
    """A list or tuple: nothing of the application's runs while it is sent, so no context
    is attached per chunk."""

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = _plain_chunks(self._body, self._request)  # type: ignore[arg-type]
        return self._iterator


# type(body) → the wrapper for bodies of that type, learnt at a type's first response (a
# handful per process: list, werkzeug's ClosingIterator, Django's responses...). One dict
# lookup per response; a file wrapper's type is never kept here (see response_body).
body_classes: dict[type, type[_ResponseBody]] = {list: _ListBody, tuple: _ListBody}
_BODY_CLASSES_MAX = 64


def response_body(body: Any, request: _ServerRequest, environ: dict[str, Any]) -> Any:
    """The body of a type not seen before, or a ``wsgi.file_wrapper`` one.

    A file wrapper is handed to the server as the very object the application returned:
    servers recognise it by class or identity and then send the file their own way
    (gunicorn: ``isinstance(body, environ["wsgi.file_wrapper"])``, then ``socket.sendfile``
    of ``body.filelike``; waitress: ``isinstance(body, ReadOnlyFileBasedBuffer)``, then its
    channel sends the file outside the worker thread, with a ``Content-Length`` from the
    file's size; wsgiref: ``isinstance(body, wsgi_file_wrapper)``, then ``sendfile()``,
    which a server built on it may implement; uWSGI: its ``wsgi.file_wrapper`` returns the
    file itself and sends with sendfile the body that *is* that object). Wrapped, each of
    them iterated the file in blocks through Python. The span then ends when the server
    closes the body (PEP 3333: it must, however the response ended): ``close`` is replaced
    on that object by one that calls the application's and then ends the span. An object
    that takes no attribute (uWSGI's body, a built-in file) ends it when it is freed, which
    the server does right after closing it (CPython frees it then, unless the application
    kept a reference); one that cannot be weakly referenced ends it now. Not kept for such a
    body: an exception raised while the server iterates it itself (a ``read()`` failing
    where sendfile cannot be used) is not recorded on the span, and the server's reading is
    not done with the request's context current (no application code runs there)."""
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None and (isinstance(body, wrapper) if isinstance(wrapper, type)
                                else hasattr(body, "read")):
        return _passed_through(body, request)
    kind = type(body)
    body_class = _SizedBody if hasattr(kind, "__len__") else _ResponseBody
    # (Learnt once per type, also where no file wrapper is offered, as under a test client:
    # a type learnt so is wrapped, as before, under a server of the same process whose own
    # file wrapper it would be: wsgiref's FileWrapper that an application uses in default
    # of one, whose stock sendfile() does nothing anyway.)
    if len(body_classes) < _BODY_CLASSES_MAX:
        body_classes[kind] = body_class
    return body_class(body, request)


def _passed_through(body: Any, request: _ServerRequest) -> Any:
    original = getattr(body, "close", None)

    def close() -> None:
        try:
            if original is not None:
                original()
        except BaseException as error:
            request.finish(error)
            raise
        request.finish()

    try:
        body.close = close
    except (AttributeError, TypeError):
        try:
            weakref.finalize(body, request.finish)
        except TypeError:
            request.finish()
    return body


def _plain_chunks(body: list[bytes] | tuple[bytes, ...],
                  request: _ServerRequest) -> Iterator[bytes]:
    yield from body
    request.finish()


def _chunks(iterator: Iterator[bytes], request: _ServerRequest) -> Iterator[bytes]:
    """The application's chunks, each produced with the request's context current (a
    streaming generator's work is the span's child); the span ends after the last, or
    with the exception that cut the body short (the status line may have gone out as a
    200 already: the response still failed)."""
    context = request.context
    while True:
        token = _attach(context)
        try:
            chunk = next(iterator)
        except StopIteration:
            request.finish()
            return
        except BaseException as error:
            request.finish(error)
            raise
        finally:
            _reset(token)
        yield chunk
