"""URLs of the test project."""

from django.urls import include, path

from . import views

api = [path("items/<int:item_id>/", views.item)]

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
]
