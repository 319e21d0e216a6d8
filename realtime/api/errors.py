"""One error shape for every REST error: {"error": {"code", "message", "details"?}}."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from realtime.errors import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    RATE_LIMITED,
    UNAUTHORIZED,
    EventError,
)

_BY_STATUS = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: BAD_REQUEST,
    415: BAD_REQUEST,
    429: RATE_LIMITED,
}
_STATUS_BY_CODE = {
    code: st for st, code in _BY_STATUS.items() if st != 405 and st != 415
}


class PathError(exceptions.ValidationError):
    """A malformed id in the URL path (realtime.api.fields.PathIdsMixin): 400 with
    the message `invalid path` and per-name details, like a body's errors."""


def exception_handler(exc, context):
    """Map DRF, Django and EventError exceptions to the one error shape."""
    if isinstance(exc, EventError):
        body = {"error": exc.as_dict()}
        return Response(body, status=_STATUS_BY_CODE.get(exc.code, 500))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _BY_STATUS.get(response.status_code, BAD_REQUEST)
    error = {"code": code, "message": _message(exc)}
    if isinstance(exc, exceptions.ValidationError):
        is_path = isinstance(exc, PathError)
        error["message"] = "invalid path" if is_path else "invalid request body"
        error["details"] = response.data
    response.data = {"error": error}
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _message(exc) -> str:
    detail = getattr(exc, "detail", None)
    if isinstance(detail, dict) and isinstance(detail.get("detail"), dict):
        detail = detail["detail"]
    if isinstance(detail, dict) and "detail" in detail:
        return str(detail["detail"])
    if isinstance(detail, str):
        return detail
    return str(exc)
