"""The request class: JSON bodies are checked at the edge before anything decodes them further.

Litestar decodes a handler's ``data`` through ``Request.json()``; here that
refuses invalid UTF-8, malformed JSON and nesting deeper than
``backend.validation.MAX_JSON_DEPTH`` with a 400 in the documented error body,
instead of a RecursionError (a 500) somewhere in validation.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException
from litestar.types import Empty

from backend.validation import BadJson, parse_json


class TouchflowRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if self._json is Empty:
            if (cached := self._connection_state.json) is not Empty:
                self._json = cached
            else:
                try:
                    value = parse_json(await self.body() or b"null")
                except BadJson as exc:
                    raise ClientException(status_code=400, detail=str(exc)) from None
                self._json = self._connection_state.json = value
        return self._json
