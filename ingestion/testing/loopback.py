"""A JSON HTTP API on loopback, for testing real client libraries at their HTTP boundary.

The test supplies what the service answers (``handle(method, path, query, body, headers) ->
(status, json)``); the server parses each request the way a REST service would, so the client
library under test (databricks-sdk, azure-synapse-spark...) runs unchanged against it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Handle = Callable[[str, str, dict[str, str], Any, dict[str, str]], tuple[int, Any]]


@contextmanager
def json_api(handle: Handle) -> Iterator[str]:
    """Serve ``handle`` on ``http://127.0.0.1:<free port>`` for the block; yields the base URL.

    Args:
        handle: answers one request: (method, path, query (first value per key), JSON body or
            None, headers) -> (HTTP status, JSON-able body). It may sleep (a slow service).
    """

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            status, data = handle(self.command, url.path, query, body, dict(self.headers))
            raw = json.dumps(data).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout case)

        do_GET = do_POST = do_DELETE = _answer  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
