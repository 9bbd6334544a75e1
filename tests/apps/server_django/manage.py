#!/usr/bin/env python
"""The Django project of the server-instrumentation tests; run it by hand with
``telemetryflow-run python tests/apps/server_django/manage.py runserver --noreload`` and
open http://127.0.0.1:8000/hello/you/."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server_django.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
