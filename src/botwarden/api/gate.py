"""The server's door: whether a request comes in is decided from its headers (the token)
before a byte of its body is read, and a body is read only up to a cap.

FastAPI reads a route's body before it runs the route's dependencies, so a token checked
as a dependency comes too late: a client without one could make the server hold a body
of any size. The gate is pure ASGI middleware in front of the whole app: the server
reads a body only when the app asks for it, and the gate asks only once the token is
good, and stops at the cap (declared by Content-Length or streamed in chunks). A refused
request's connection is closed, since the body it still carries is never read.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botwarden.api.auth import authorized

MAX_BODY = 64 * 1024
"""Bytes. The largest request is a stored key: a name, an API key and a secret of up to
4096 characters (a PEM private key) in JSON, a few KiB even with every character escaped.
Nothing legitimate comes near 64 KiB."""

OPEN_PATHS = frozenset({"/healthz", "/"})
"""No token: health, and the dashboard's page and files (they hold no data; the page
asks for the token and sends it with every call)."""
OPEN_PREFIX = "/static/"

NO_TOKEN = "a token is needed: Authorization: Bearer TOKEN"


class ClientGone(Exception):
    """The client went away before its body was all sent: nobody to answer."""


class Gate:
    def __init__(self, app: ASGIApp, token: str, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan; the app has no websocket routes
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not _open(scope["path"]) and not authorized(headers.get("authorization"), self.token):
            await _refuse(401, NO_TOKEN, scope, receive, send, {"WWW-Authenticate": "Bearer"})
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            said = f"the request body ({int(declared)} bytes) is {self._over}"
            await _refuse(413, said, scope, receive, send)
            return
        try:
            body = await self._read_body(receive)
        except ClientGone:
            return
        if body is None:
            await _refuse(413, f"the request body is {self._over}", scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    @property
    def _over(self) -> str:
        return f"over {self.max_body // 1024} KiB, the most this API takes"

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it grows past the cap."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIX)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, as one message; then the server's own (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_after() -> Message:
        return pending.pop() if pending else await receive()

    return receive_after


async def _refuse(
    status: int,
    error: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: dict[str, str] | None = None,
) -> None:
    answer = JSONResponse(
        {"error": error}, status_code=status, headers={**(headers or {}), "Connection": "close"}
    )
    await answer(scope, receive, send)
