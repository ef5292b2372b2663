"""Serving an ``ApiApp`` with uvicorn inside the caller's event loop, cheaply and quietly.

``host`` starts one ``ApiServer`` per cluster. uvicorn's ``serve()`` is avoided on purpose: it
installs process-wide signal handlers and ticks every 100 ms, which many clusters in one process
must not do; startup binds the socket directly and ``stop`` closes listeners, streams and
connections, so the port is free when it returns.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import uvicorn

from bayport.cluster.http.app import ApiApp

_STOP_WAIT_SECONDS = 2.0            # bound on waiting for in-flight responses when stopping


class ApiServer:
    def __init__(self, app: ApiApp) -> None:
        self.app = app
        self._server: uvicorn.Server | None = None
        self.url = ""

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self, host: str = "127.0.0.1", port: int = 0, *,
                    ssl_context: ssl.SSLContext | None = None) -> str:
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", log_config=None,
                                lifespan="off", http="httptools", ws="none", interface="asgi3",
                                access_log=False, proxy_headers=False, server_header=False,
                                date_header=False, timeout_graceful_shutdown=1)
        config.load()
        if ssl_context is not None:
            config.ssl = ssl_context
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup()
        if not getattr(server, "servers", None):
            raise OSError(f"could not serve the cluster API on {host}:{port}")
        await server.on_tick(0)
        self._server = server
        sock: socket.socket = server.servers[0].sockets[0]
        bound = sock.getsockname()
        self.url = f"{'https' if ssl_context else 'http'}://{bound[0]}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        for listener in server.servers:
            listener.close()
        self.app.close_streams()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        deadline = time.monotonic() + _STOP_WAIT_SECONDS
        while server.server_state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for task in list(server.server_state.tasks):
            task.cancel()
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        for listener in server.servers:
            await listener.wait_closed()
        self.url = ""
