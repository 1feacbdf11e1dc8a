"""`layerwise serve RUN`: bind the port first (one sentence when it is taken), then uvicorn on that socket."""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path
from typing import Any

from ..errors import ConfigError, say

INSTALL = "pip install 'layerwise[serve]'"


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (not yet listening), or a ConfigError that names the port."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range; pick one from 1024 to 65535 with --port.")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise ConfigError(f"cannot listen on host {host!r}: no such address; use 127.0.0.1 (this machine only) "
                          "or 0.0.0.0 (every interface).") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port in TIME_WAIT is free
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use; stop what runs there or pick another port with "
                              "--port.") from None
        if e.errno == errno.EACCES:
            raise ConfigError(f"port {port} on {host} needs administrator rights; pick one above 1023 with "
                              "--port.") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); check --host and --port.") from None
    return sock


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(run: str | Path, host: str = "127.0.0.1", port: int = 8000, threads: int | None = None,
          log_level: str = "warning", **limits: Any) -> int:
    """Serve the run folder `run` on host:port until Ctrl-C or SIGTERM (queued requests are answered first).

    `limits` go to make_app: max_batch, max_wait_ms, max_queue, max_items, max_body_mb.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise ConfigError(f"`layerwise serve` needs FastAPI and uvicorn ({e.name} is missing): {INSTALL}.") from None
    try:
        import multipart  # noqa: F401 (python-multipart, for /predict/files)
    except ImportError:
        raise ConfigError(f"`layerwise serve` needs python-multipart for file uploads: {INSTALL}.") from None
    sock = bind(host, port)
    try:
        from ..run import Run
        from .app import make_app

        loaded = Run.load(run)
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        app = make_app(loaded, **limits)
        if not _loopback(host):
            say(f"warning: serving on {host} makes the model reachable from other machines, without any "
                "authentication.")
        shown = f"[{host}]" if ":" in host else host
        say(f"serving {Path(run).name} ({loaded.info.get('model')}, {loaded.task.name}) on http://{shown}:{port}; "
            f"docs at http://{shown}:{port}/docs; Ctrl-C stops")
        config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=30,
                                lifespan="on")
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn raises Ctrl-C again once it has shut down gracefully
            say("stopped")
        return 0 if server.started else 1
    finally:
        sock.close()
