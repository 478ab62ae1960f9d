"""Run ASGI apps with uvicorn on loopback ports, in background threads of this process."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

__all__ = ["RunningServer", "bind_socket", "start_server"]


@dataclass
class RunningServer:
    """A uvicorn server started by :func:`start_server`."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish (open streams get ``timeout`` seconds) and wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout + 5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port); a taken port raises ``OSError``.

    Binding before building an app lets the app know its own URL (webhook URLs need it).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def start_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    name: str = "server",
    startup_timeout: float = 30.0,
    graceful_timeout: int = 3,
) -> RunningServer:
    """Serve ``app`` in a thread on ``sock`` or on ``host:port``; returns once it accepts."""
    sock = sock or bind_socket(host, port)
    host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the starting thread below
            failure.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"qualflow-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if failure:
            raise RuntimeError(f"the {name} failed to start: {failure[0]}") from failure[0]
        if not thread.is_alive():
            raise RuntimeError(f"the {name} stopped while starting (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the {name} did not start within {startup_timeout:.0f} s")
        time.sleep(0.02)
    return RunningServer(server=server, thread=thread, host=host, port=bound_port)
