"""Errors as people and programs expect them.

Pages get an HTML error page (no stack trace, ever), a 401 becomes a trip to
the sign-in page, and htmx requests get a short alert swapped into the page's
``#flash`` region. Everything under /api/ gets
``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError, DBAPIError

from backend.auth.csrf import CsrfRefused
from backend.i18n import N_, _, activate_locale, catalogs
from backend.web.render import is_htmx

log = logging.getLogger("touchflow.errors")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}
_TITLES = {
    400: N_("That request could not be understood"),
    401: N_("Please sign in"),
    403: N_("You do not have access to this"),
    404: N_("Page not found"),
    405: N_("That action is not available here"),
    409: N_("That conflicts with a change made meanwhile"),
    422: N_("Some fields are missing or invalid"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong on our side"),
    503: N_("Touchflow is temporarily unavailable"),
}
_DEFAULT_MESSAGES = {
    404: N_("There is nothing at this address. It may have been moved or deleted."),
    405: N_("This address does not accept that kind of request."),
    500: N_("The error has been logged. Please try again in a moment."),
}


# Paths called by machines (the API, inbound webhooks, the web snippet) get JSON errors.
_MACHINE_PREFIXES = ("/api/", "/hooks/", "/p/")


def is_api(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(_MACHINE_PREFIXES)


def error_code(status: int, exc: Exception | None = None) -> str:
    if isinstance(exc, CsrfRefused):
        return "csrf_failed"
    return _CODES.get(status, "error")


def _message(status: int, exc: HTTPException) -> str:
    if isinstance(exc, ValidationException):
        # Our own refusals carry a sentence for people; Litestar's say "Validation failed for ...".
        if isinstance(exc.detail, str) and exc.detail and not exc.detail.startswith("Validation"):
            return exc.detail
        described = _describe_validation(exc.extra)
        return _(_TITLES[422]) + (f": {described}" if described else "")
    detail = exc.detail if isinstance(exc.detail, str) else ""
    generic = detail == "" or detail == _http_phrase(status)
    if status in _DEFAULT_MESSAGES and generic:
        return _(_DEFAULT_MESSAGES[status])
    if generic:
        return _(_TITLES.get(status, N_("That request could not be completed")))
    return detail


def _http_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def json_error(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        content={"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _html_error(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response[Any] | Template:
    title = _(_TITLES.get(status, N_("That request could not be completed")))
    context = {"status": status, "title": title, "message": message}
    if is_htmx(request):
        # Swap a short alert into the layout's live region instead of the request's target.
        return Template(
            template_name="errors/alert.html",
            context=context,
            status_code=status,
            headers={**(headers or {}), "HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    return Template(
        template_name="errors/error.html", context=context, status_code=status, headers=headers
    )


def _login_redirect(request: Request[Any, Any, Any]) -> Response[Any]:
    url = request.url
    if is_htmx(request):
        # The fragment's own URL is the wrong place to come back to; the page is right.
        url = urlsplit(request.headers.get("hx-current-url", "/"))  # type: ignore[assignment]
    path = url.path + (f"?{url.query}" if url.query else "")
    target = "/login" if path in ("/", "/login") else f"/login?next={quote(path, safe='/')}"
    if is_htmx(request):
        return Response(content=b"", status_code=200, headers={"HX-Redirect": target})
    return Redirect(path=target, status_code=303)


def _use_request_locale(request: Request[Any, Any, Any]) -> None:
    """The language the request was answered in: the user's choice, else the browser's."""
    chosen = request.scope.get("state", {}).get("locale")
    activate_locale(chosen or catalogs.negotiate(request.headers.get("accept-language")))


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    _use_request_locale(request)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if is_api(request):
        details = exc.extra or None
        if status == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="touchflow"')
        return json_error(status, error_code(status, exc), _message(status, exc), details, headers)
    if status == 401:
        return _login_redirect(request)
    return _html_error(request, status, _message(status, exc), headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    _use_request_locale(request)
    status = HTTP_500_INTERNAL_SERVER_ERROR
    message = _(_DEFAULT_MESSAGES[status])
    if is_api(request):
        return json_error(status, error_code(status), message)
    return _html_error(request, status, message)


def out_of_range_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A value the database cannot hold (an integer past BIGINT, text PostgreSQL cannot
    encode: SQLSTATE class 22, "data exception") is the caller's mistake: 400. The edges
    validate first; this is the net. Any other database error stays a 500."""
    if isinstance(exc, DBAPIError) and not _is_data_exception(exc):
        return internal_error_handler(request, exc)
    log.warning("value refused by the database on %s %s: %s", request.method, request.url.path, exc)
    _use_request_locale(request)
    status = HTTP_400_BAD_REQUEST
    message = _("A value in the request is out of range or not of the right kind.")
    if is_api(request):
        return json_error(status, error_code(status), message)
    return _html_error(request, status, message)


def _is_data_exception(exc: DBAPIError) -> bool:
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(exc, DataError) or str(state or "").startswith("22")


def _describe_validation(extra: Any) -> str:
    if not isinstance(extra, list):
        return ""
    parts = []
    for item in extra:
        if isinstance(item, dict):
            key = item.get("key") or item.get("source") or ""
            parts.append(f"{key}: {item.get('message', '')}".strip(": "))
    return "; ".join(parts)


EXCEPTION_HANDLERS = {
    HTTPException: http_exception_handler,
    OverflowError: out_of_range_handler,
    DBAPIError: out_of_range_handler,
    Exception: internal_error_handler,
}
