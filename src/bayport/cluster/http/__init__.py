"""The embedded cluster's Kubernetes REST API over HTTP (ASGI, served by uvicorn from ``host``)."""

from bayport.cluster.http.app import ApiApp
from bayport.cluster.http.context import ApiContext, LogSource

__all__ = ["ApiApp", "ApiContext", "LogSource"]
