"""Settings of the test project: no apps, just URLs and views. Its databases are connected
only by the views that query them: SQLite in memory, and the local PostgreSQL (user
postgres, database test) for ``/db/postgres/``. ``DJANGO_DEBUG=1`` turns DEBUG on."""

import os

SECRET_KEY = "server-django-tests-only"
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__.rsplit(".", 1)[0] + ".urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "postgres": {"ENGINE": "django.db.backends.postgresql", "NAME": "test", "USER": "postgres",
                 "HOST": "127.0.0.1", "PORT": "5432"},
}
USE_TZ = True
