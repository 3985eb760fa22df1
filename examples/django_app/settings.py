"""Settings of the Django chat example: session-mw is one line in MIDDLEWARE."""

from __future__ import annotations

SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "examples.django_app.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["session_mw.django.SessionMiddleware"]
SESSION_MW_HEADER_NAME = "X-Session-Id"  # every option has a SESSION_MW_ setting
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
