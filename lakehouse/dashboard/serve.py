"""Serve a built dashboard folder on localhost (the page also opens from the file without a server)."""

from __future__ import annotations

import functools
import http.server
from collections.abc import Callable
from pathlib import Path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8050) -> http.server.ThreadingHTTPServer:
    """An HTTP server of ``folder`` (not started); port 0 picks a free port."""
    handler = functools.partial(_Quiet, directory=str(folder))
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve(folder: Path, host: str = "127.0.0.1", port: int = 8050,
          announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = make_server(folder, host, port)
    announce(f"http://{host}:{server.server_address[1]}/index.html")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
