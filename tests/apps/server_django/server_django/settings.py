"""Settings of the test project: no database, no apps, just URLs and views."""

SECRET_KEY = "server-django-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__.rsplit(".", 1)[0] + ".urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
