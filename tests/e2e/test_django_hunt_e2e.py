"""Django under ``telemetryflow-run python manage.py runserver`` (and gunicorn), exporting to
the real OTLP receiver: ``re_path()`` routes reported like ``path()`` ones, the queries a view
runs through Django's database layer (SQLite, PostgreSQL) as children of the request's
SERVER span, and requests a sample rate of 0 leaves unsampled still counted."""

from __future__ import annotations

import pytest

from ..otlp_receiver import free_port
from .launcher import REPO, python
from .test_http_servers_e2e import DJANGO_MANAGE, env_for, get, server_spans, serving

pytestmark = pytest.mark.e2e

_PROJECT = str(REPO / "tests" / "apps" / "server_django")


def _db_children(receiver, server_span, system: str) -> list:
    def children() -> list:
        return [s for s in receiver.spans() if s.parent_span_id == server_span.span_id
                and s.attributes.get("db.system.name") == system]

    assert receiver.wait_for(lambda _: len(children()) >= 2), [s.name for s in receiver.spans()]
    return children()


def test_runserver_regex_routes_and_sqlite_queries(otlp_receiver, tmp_path):
    """``re_path()`` routes (alone and around an ``include()``) start with ``/`` like every
    other route, in the span and in the duration metric; the view's two SQLite queries
    through ``django.db.connections`` are children of its SERVER span."""
    port = free_port()
    args = [*python(DJANGO_MANAGE, "runserver", "--noreload", f"127.0.0.1:{port}")]
    env = env_for(otlp_receiver, "django-hunt", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    with serving((args, env, port, tmp_path / "d.log")):
        assert get(port, "/articles/2024/") == (200, "regex year=2024")
        assert get(port, "/legacy/items/4/") == (200, "item 4")
        assert get(port, "/db/default/") == (200, "db default 2")
        spans = {s.attributes["url.path"]: s for s in server_spans(otlp_receiver, 3)}
        otlp_receiver.wait_for_metric(
            "http.server.request.duration",
            where=lambda p: p.attributes.get("http.route") == "/legacy/items/<int:item_id>/")
    assert spans["/articles/2024/"].name == "GET /articles/(?P<year>[0-9]{4})/$"
    assert spans["/legacy/items/4/"].attributes["http.route"] == "/legacy/items/<int:item_id>/"
    routes = {p.attributes.get("http.route") for p in otlp_receiver.metrics()
              if p.name == "http.server.request.duration"}
    assert "/articles/(?P<year>[0-9]{4})/$" in routes
    assert not [r for r in routes if r and not r.startswith("/")], routes
    queries = [s.attributes["db.query.text"]
               for s in _db_children(otlp_receiver, spans["/db/default/"], "sqlite")]
    assert queries[-2:] == ["SELECT ?", "SELECT ?"]


@pytest.mark.service("postgres")
def test_gunicorn_postgres_queries_are_children_and_unsampled_requests_counted(
        otlp_receiver, tmp_path):
    """gunicorn serving the project's WSGI app: a view's PostgreSQL queries (Django's
    postgresql backend) are children of the SERVER span; with TELEMETRYFLOW_SAMPLE_RATE=0
    a second server exports no span but still one duration point per request."""
    port, quiet_port = free_port(), free_port()
    base = ["gunicorn", "-w", "1", "--chdir", _PROJECT, "server_django.wsgi"]
    env = env_for(otlp_receiver, "django-pg", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    quiet_env = env_for(otlp_receiver, "django-unsampled", TELEMETRYFLOW_SAMPLE_RATE="0",
                        TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    with serving(([*base, "-b", f"127.0.0.1:{port}"], env, port, tmp_path / "g.log"),
                 ([*base, "-b", f"127.0.0.1:{quiet_port}"], quiet_env, quiet_port,
                  tmp_path / "q.log")):
        assert get(port, "/db/postgres/") == (200, "db postgres 2")
        for _ in range(3):
            assert get(quiet_port, "/articles/2001/")[0] == 200
        [span] = server_spans(otlp_receiver, 1)
        children = _db_children(otlp_receiver, span, "postgresql")
        points = otlp_receiver.wait_for_metric(
            "http.server.request.duration",
            where=lambda p: p.resource.get("service.name") == "django-unsampled"
            and p.count == 3)
    assert span.attributes["http.route"] == "/db/<str:alias>/"
    assert {s.trace_id for s in children} == {span.trace_id}
    assert points[-1].attributes["http.route"] == "/articles/(?P<year>[0-9]{4})/$"
    assert not [s for s in otlp_receiver.spans()
                if s.resource.get("service.name") == "django-unsampled"]
