from __future__ import annotations

from django.urls import path

from examples.django_app.views import chat

urlpatterns = [path("chat", chat)]
