"""Views of the test project."""

from __future__ import annotations

import asyncio
import time

from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse


def hello(request, name):
    return HttpResponse(f"hello {name}")


def item(request, item_id):
    return HttpResponse(f"item {item_id}")


async def hello_async(request, name):
    await asyncio.sleep(0)
    return HttpResponse(f"hello async {name}")


def status(request, code):
    if code == 404:
        raise Http404("no such thing")
    return HttpResponse(f"status {code}", status=code)


def boom(request):
    raise ValueError("boom from django")


def stream(request):
    def chunks():
        for i in range(3):
            time.sleep(0.05)
            yield f"chunk {i}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def stream_fail(request):
    """A 200 whose body breaks after its first chunk."""
    def chunks():
        yield "chunk 0\n"
        raise RuntimeError("stream broke")

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def astream_fail(request):
    """``stream_fail`` with an async body (the kind Django's ASGI handler streams)."""
    async def chunks():
        yield "chunk 0\n"
        raise RuntimeError("stream broke")

    return StreamingHttpResponse(chunks(), content_type="text/plain")


# The span current in each step of the context-reporting streams below (tests read it).
STREAM_SPANS: list[object] = []


def _note_current_span() -> None:
    """What a streaming generator's own work looks like to the tracer: the span current
    (for in-process tests) and a traced SQLite query (its span's parent, end to end)."""
    import sqlite3

    from opentelemetry import trace

    STREAM_SPANS.append(trace.get_current_span().get_span_context())
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("SELECT 1").fetchall()
    finally:
        connection.close()


def stream_context(request):
    """A stream whose generator notes the span current while the server pulls each chunk."""
    def chunks():
        for i in range(2):
            _note_current_span()
            yield f"chunk {i}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def astream_context(request):
    """``stream_context`` with an async body."""
    async def chunks():
        for i in range(2):
            await asyncio.sleep(0)
            _note_current_span()
            yield f"chunk {i}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def source(request):
    """This file, as a FileResponse (which a WSGI server may send with ``sendfile``)."""
    return FileResponse(open(__file__, "rb"), content_type="text/plain")


def index(request):
    return HttpResponse("index")


def db_query(request, alias):
    """Two queries on database ``alias`` through Django's ORM layer (``connections``)."""
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT %s", [1])
        cursor.execute("SELECT 2")
        value = cursor.fetchone()[0]
    return HttpResponse(f"db {alias} {value}")


async def db_query_async(request):
    """``db_query`` on SQLite from an async view (Django's ORM needs ``sync_to_async``)."""
    from asgiref.sync import sync_to_async

    response = await sync_to_async(db_query)(request, "default")
    return HttpResponse(b"async " + response.content)


def echo_body(request):
    """The request body read back (``request.body``)."""
    return HttpResponse(request.body, content_type="application/octet-stream")


def regex_view(request, **kwargs):
    return HttpResponse("regex " + ",".join(f"{k}={v}" for k, v in sorted(kwargs.items())))
