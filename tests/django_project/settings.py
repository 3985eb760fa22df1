"""A Django project for the tests: session-mw first, then Django's and django-cors-headers'."""

from __future__ import annotations

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django_project.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "corsheaders",
    "rest_framework",
]
MIDDLEWARE = [
    "session_mw.django.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
CORS_ALLOWED_ORIGINS = ["http://localhost:3000"]
CORS_EXPOSE_HEADERS = ["ETag"]
USE_TZ = True
LOGGING_CONFIG = None  # the tests' own logging stays as pytest set it
