"""Serving the adaptor with uvicorn: in a background thread (tests, demo) or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

DEFAULT_PORTS = {"shop": 8401, "loyalty": 8402, "travel": 8403}
STARTUP_TIMEOUT = 15.0
GRACEFUL_SHUTDOWN = 1
STOP_TIMEOUT = 3.0


class _NotifyingServer(uvicorn.Server):
    """A uvicorn server that sets an event once it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._ready.set()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0) so asyncio recognises the socket as TCP and sets TCP_NODELAY on
    # accepted connections; otherwise each loopback answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class BackgroundServer:
    """Run an ASGI app with uvicorn in a daemon thread; a context manager.

    The socket is bound before the thread starts (``port=0`` picks a free port), and
    ``__enter__`` returns once uvicorn accepts connections, so ``url`` is usable at once.
    ``__exit__`` asks uvicorn to stop, cancels requests still running after a short grace
    period (a hanging request cannot block it), and forces the exit if that is not enough.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile = ssl_keyfile
        self.url = ""
        self._server: _NotifyingServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self) -> None:
        """Bind, start uvicorn in a thread and wait until it serves; RuntimeError if it fails."""
        sock = _bind(self.host, self.port)
        self._socket = sock
        self.port = sock.getsockname()[1]
        scheme = "https" if self.ssl_certfile else "http"
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{scheme}://{shown}:{self.port}/"
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False,
            ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        )
        ready = threading.Event()
        self._server = _NotifyingServer(config, ready)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"adaptor-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready.wait(timeout=0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the adaptor server did not start on {self.url}")

    def stop(self) -> None:
        """Stop uvicorn and wait for its thread (forcing the exit when it lingers)."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=GRACEFUL_SHUTDOWN + STOP_TIMEOUT)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout=STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @property
    def running(self) -> bool:
        """Whether the server thread is still alive."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve(app: Any, host: str, port: int, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> None:
    """Serve ``app`` in the foreground until interrupted (Ctrl+C), with access logs."""
    config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_level="info",
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                            timeout_graceful_shutdown=3)
    uvicorn.Server(config).run()
