"""A single-file Django app with a limit per route and client: ``python examples/django_app.py
[port]`` (Django's own server, ``runserver``).

Run ``ratekeeper serve --config examples/policies.yaml`` first (or set RATEKEEPER_SERVER to
its gRPC address). ``/hello`` allows 3 a minute per client (the view decorator), ``/search`` 5
(the middleware, keyed per route), ``/health`` any (exempt).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="example-only",
    MIDDLEWARE=[f"{__name__}.RateLimit"],
)

from django.core.management import execute_from_command_line  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

import ratekeeper  # noqa: E402
from ratekeeper.client.integrations.django import exempt, keys, limit, middleware  # noqa: E402

POLICIES = Path(__file__).with_name("policies.yaml")
limiter = ratekeeper.Limiter(
    os.environ.get("RATEKEEPER_SERVER", "127.0.0.1:8081"), domain="example", policies=POLICIES
)
client = keys.client_address(trusted_proxies=["127.0.0.1"])  # behind a local proxy


def _route_of(request: HttpRequest) -> tuple[tuple[str, str], ...] | None:
    if request.path != "/search":
        return None  # the other views limit themselves (or are exempt)
    return keys.route("search", client)(request)


#: Every view but the exempt ones, under the key of _route_of.
RateLimit = middleware(limiter, key=_route_of)


@limit(limiter, key=keys.route("hello", client))
def hello(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"hello": "world"})


def search(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"q": request.GET.get("q", "")})


@exempt
def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("hello", hello), path("search", search), path("health", health)]

if __name__ == "__main__":
    port = sys.argv[1] if len(sys.argv) > 1 else "8000"
    try:
        execute_from_command_line([sys.argv[0], "runserver", "--noreload", f"127.0.0.1:{port}"])
    finally:
        limiter.close()
