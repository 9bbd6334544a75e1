"""URLs of the test project."""

from django.urls import include, path, re_path

from . import views

api = [path("items/<int:item_id>/", views.item)]
legacy = [re_path(r"^old/(?P<slug>[-\w]+)/$", views.regex_view),
          path("items/<int:item_id>/", views.item)]

urlpatterns = [
    path("", views.index),
    path("hello/<str:name>/", views.hello),
    path("async/<str:name>/", views.hello_async),
    path("status/<int:code>/", views.status),
    path("boom/", views.boom),
    path("stream/", views.stream),
    path("stream/fail/", views.stream_fail),
    path("astream/fail/", views.astream_fail),
    path("stream/context/", views.stream_context),
    path("astream/context/", views.astream_context),
    path("source/", views.source),
    path("api/", include(api)),
    path("db/<str:alias>/", views.db_query),
    path("adb/", views.db_query_async),
    path("echo/", views.echo_body),
    re_path(r"^articles/(?P<year>[0-9]{4})/$", views.regex_view),
    re_path(r"^legacy/", include(legacy)),
]
