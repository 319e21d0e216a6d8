"""GET /metrics: this process's Prometheus metrics, for a bearer token or an allowed
address (METRICS_TOKEN, METRICS_ALLOWED_IPS)."""

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from realtime.errors import FORBIDDEN
from realtime.metrics import REGISTRY


def metrics_allowed(request) -> bool:
    """The right bearer token, or a request from an allowed address."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        if hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode()):
            return True
    return request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOWED_IPS


@require_GET
def metrics_view(request):
    """The metrics in Prometheus text format; 403 in the API's error shape if the
    caller is neither holding the token nor at an allowed address."""
    if not metrics_allowed(request):
        return JsonResponse(
            {"error": {"code": FORBIDDEN, "message": "metrics are not public"}},
            status=403,
        )
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
