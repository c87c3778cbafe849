from django.urls import path

from otel_uwsgi.demo import views

urlpatterns = [
    path("", views.index),
    path("trace", views.whole_trace),
    path("downstream", views.downstream),
    path("db", views.one_query),
    path("db10", views.ten_queries),
    path("pg", views.pg_query),
    path("slow", views.slow),
    path("error", views.error),
    path("whoami", views.whoami),
    path("grow", views.grow),
    path("exit", views.exit_now),
]
