"""ASGI entry point (from tests/apps/server_django: ``uvicorn server_django.asgi:application``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server_django.settings")
application = get_asgi_application()
