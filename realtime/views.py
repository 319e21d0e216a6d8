"""Pages served outside the API: the favicon browsers ask every site for."""

from pathlib import Path

from django.http import HttpResponse
from django.views.decorators.http import require_GET

FAVICON = Path(__file__).resolve().parent / "static" / "realtime" / "favicon.ico"
# Browsers ask for /favicon.ico on every page that links none (the admin's); a day of
# caching keeps that to one request per browser and day.
FAVICON_MAX_AGE = 24 * 3600


@require_GET
def favicon(request):
    """GET /favicon.ico: the icon the demo pages link to."""
    # 222 bytes: a plain response (a FileResponse streams, which Django's ASGI
    # handler warns about for a synchronous file).
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/x-icon")
    response["Cache-Control"] = f"public, max-age={FAVICON_MAX_AGE}"
    return response
