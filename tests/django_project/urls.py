from __future__ import annotations

from django.urls import include, path

from tests.django_project import views

urlpatterns = [
    path("whoami/", views.whoami),
    path("awhoami/", views.awhoami),
    path("api/", include([path("chat/<int:cid>/", views.whoami)])),
    path("threads/<str:thread_id>/", views.whoami),
    path("boom/", views.boom),
    path("own/", views.own_header),
    path("stream/", views.stream),
    path("astream/", views.astream),
    path("traced/", views.traced),
    path("traced-stream/", views.traced_stream),
    path("drf/", views.DrfWhoami.as_view()),
]
