"""Running the service: :func:`serve_in_thread` (demo, tests, benchmarks) and :func:`run` (the
CLI, ``python -m mlops_provider.serving``)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from mlops_provider.serving.settings import ServingSettings

__all__ = ["ServerHandle", "run", "serve_in_thread"]


class ServerHandle:
    """A service running in a background thread; a context manager that stops it on exit.

    :param server: the ``uvicorn.Server``.
    :param thread: the thread running it.
    :param host: the address it listens on.
    :param port: the port it listens on (the real one when 0 was asked for).
    """

    def __init__(
        self, server: Any, thread: threading.Thread, host: str, port: int, app: Any
    ) -> None:
        self.server = server
        self.thread = thread
        self.host = host
        self.port = port
        self.app = app

    @property
    def url(self) -> str:
        """``http://<host>:<port>``."""
        return f"http://{self.host}:{self.port}"

    @property
    def state(self) -> Any:
        """The app's :class:`~mlops_provider.serving.service.ServingState` (tests)."""
        return self.app.state.serving

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down gracefully (in-flight requests finish, the prediction log is flushed)."""
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_in_thread(
    settings: ServingSettings,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 120.0,
    log_level: str = "warning",
) -> ServerHandle:
    """Start the service (uvicorn) in a daemon thread and wait until it has started.

    :param port: 0 picks a free port (``handle.port``).
    :raises RuntimeError: the server did not start within ``startup_timeout`` seconds (or its
        startup failed).
    """
    import uvicorn

    from mlops_provider.serving.app import create_app

    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="mlops-serving", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            sock.close()
            raise RuntimeError(f"the serving app did not start on {host}:{port}")
        time.sleep(0.02)
    return ServerHandle(server, thread, host, int(sock.getsockname()[1]), app)


def run(
    settings: ServingSettings, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info"
) -> None:
    """Serve in the foreground until interrupted (what the CLI does)."""
    import uvicorn

    from mlops_provider.serving.app import create_app

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    app = create_app(settings, announce=f"http://{shown}:{port}", freeze_gc=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
