"""Credentials never reach a log line: URL passwords, bearer tokens and named secrets are
replaced by ``***`` in every record a handler writes (issue 16 item 7: the ready log printed
``backend=redis://default:S3cretPW@…``).

:func:`install` adds a :class:`Redactor` to every handler of the root logger, so records of
every module (and of libraries logging through ``logging``) pass through it; a handler added
later is not covered, so a process installs it once its logging is configured.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["Redactor", "install", "redact"]

_MASK = "***"
#: ``scheme://user:password@`` (the password is whatever runs to the ``@``).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s@/]+@")
#: ``Bearer <token>`` in a header or metadata value.
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords, bearer tokens and each of ``secrets`` masked."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{_MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m['head']}{_MASK}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


class Redactor(logging.Filter):
    """Masks credentials in each record's message (and its formatted traceback)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        return True


def install(secrets: Iterable[str] = ()) -> Redactor:
    """Add one :class:`Redactor` (masking ``secrets`` too) to every root handler; returns it."""
    redactor = Redactor(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor
