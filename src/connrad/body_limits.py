"""Request body limits per route (pure ASGI): STOW-RS bodies are streamed and limited per
part by the STOW handler; every other body (JSON, forms) is bounded here, whether it comes
with a Content-Length or chunked, before any handler buffers it.
"""

from __future__ import annotations

import json

from connrad.security_headers import ASGIApp, Message, Receive, Scope, Send

STREAMED = (("POST", "/dicomweb/studies"),)


class BodyLimits:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _streamed(scope):
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, limit)
                return
        received = 0
        started = refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now and let the handler see a client that went away; whatever
                    # it tries to send afterwards is dropped.
                    refused = True
                    if not started:
                        await _too_large(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, bounded_receive, tracking_send)


def _streamed(scope: Scope) -> bool:
    path = scope["path"]
    return any(
        scope["method"] == method and (path == prefix or path.startswith(prefix + "/"))
        for method, prefix in STREAMED
    )


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
