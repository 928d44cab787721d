"""How a failed delivery is classified: once, here, for every channel.

Permanent (retrying cannot help, the message goes to ``dead`` at once):
``PermanentError`` and its ``HardBounce``, an address that cannot be written
or encoded (``UnicodeError``), an SMTP 5xx answer, an HTTP 4xx other than
408/425/429. Temporary (the outbox retries with back-off): an SMTP 4xx, an
HTTP 5xx or 408/425/429, timeouts, refused or lost connections, and anything
unexpected, which is retried until the attempt limit rather than dropped.

Reasons for permanent failures are written for the marketer who reads them on
the Outbox page: what happened and what to do, not the protocol's words.
"""

from __future__ import annotations

import aiosmtplib

from runtime.delivery import HardBounce, PermanentError

__all__ = ["RETRYABLE_HTTP_4XX", "http_status_is_permanent", "is_permanent", "smtp_failure"]

RETRYABLE_HTTP_4XX = (408, 425, 429)


def N_(message: str) -> str:
    """Mark a reason for the translation catalogue (the Outbox page translates it on display)."""
    return message


NO_SMTPUTF8 = N_(
    "The address has letters such as å, ä or ö before the @, and the mail server this "
    "email goes through cannot take such addresses (it does not offer SMTPUTF8). Ask the "
    "contact for another address, or use a mail provider that supports international addresses."
)
REFUSED_RECIPIENT = N_(
    "The recipient's mail server says this address does not exist or cannot receive email. "
    "It is now on the suppression list."
)
REFUSED_MESSAGE = N_("The mail server refused this email and will not accept it if sent again.")


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying ``exc``'s delivery cannot help (see the module docstring)."""
    if isinstance(exc, PermanentError | UnicodeError):
        return True
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 500 <= exc.code < 600
    return False


def http_status_is_permanent(status: int) -> bool:
    """An HTTP answer that a retry cannot change (4xx but for timeouts and rate limits)."""
    return 400 <= status < 500 and status not in RETRYABLE_HTTP_4XX


def smtp_failure(exc: Exception, recipient: str) -> Exception:
    """The classified form of an SMTP send's exception: a ``PermanentError`` with a reason,
    or ``exc`` itself when it is temporary."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if codes and all(500 <= code < 600 for code in codes):
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            return HardBounce(f"{REFUSED_RECIPIENT} ({detail})", recipient)
        return exc
    if isinstance(exc, aiosmtplib.SMTPNotSupported) and "SMTPUTF8" in str(exc).upper():
        return PermanentError(NO_SMTPUTF8)
    if isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600:
        return PermanentError(f"{REFUSED_MESSAGE} ({exc.code} {exc.message})")
    if isinstance(exc, UnicodeError):
        return PermanentError(f"the email could not be encoded for the mail server: {exc}")
    return exc
