"""Django's ``http.route`` for every kind of URL pattern (``path()``, ``re_path()``,
``include()`` of either under either, a ``SCRIPT_NAME`` prefix), against real Django's test
client: every route starts with ``/``, as the URL path does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server_fixtures import ServerTelemetry, configure_django, server_telemetry

__all__ = ["server_telemetry"]

_URLS = "tests.apps.server_django.server_django.urls"


@pytest.fixture
def client(server_telemetry: ServerTelemetry) -> Iterator[object]:
    configure_django()
    from django.test import Client
    from django.test.utils import override_settings

    with override_settings(ROOT_URLCONF=_URLS, ALLOWED_HOSTS=["*"],
                           MIDDLEWARE=["django.middleware.common.CommonMiddleware"]):
        yield Client()


@pytest.mark.parametrize(("path", "route"), [
    ("/articles/2024/", "/articles/(?P<year>[0-9]{4})/$"),
    ("/legacy/old/a-b/", "/legacy/old/(?P<slug>[-\\w]+)/$"),
    ("/legacy/items/4/", "/legacy/items/<int:item_id>/"),
    ("/api/items/4/", "/api/items/<int:item_id>/"),
    ("/", "/"),
])
def test_every_kind_of_pattern_gives_a_route_starting_with_a_slash(
        server_telemetry: ServerTelemetry, client, path: str, route: str) -> None:
    """A ``re_path()`` pattern (alone, or including ``path()`` patterns) is reported like a
    ``path()`` one: its ``^`` anchor gives way to the leading ``/`` (as Django drops it when
    it joins an included pattern), in the attribute, the span name and the metric."""
    response = client.get(path)
    assert response.status_code == 200
    span = server_telemetry.one_server_span()
    assert span.attributes["http.route"] == route
    assert span.name == f"GET {route}"
    [point] = server_telemetry.duration_points()
    assert point.attributes["http.route"] == route


def test_script_name_prefixes_a_regex_route_as_a_path_route(
        server_telemetry: ServerTelemetry, client) -> None:
    """Served under ``SCRIPT_NAME=/app``, a ``re_path()`` route is ``/app/articles/...``,
    not ``/app^articles/...``."""
    response = client.get("/articles/1999/", SCRIPT_NAME="/app")
    assert response.status_code == 200
    span = server_telemetry.one_server_span()
    assert span.attributes["http.route"] == "/app/articles/(?P<year>[0-9]{4})/$"
