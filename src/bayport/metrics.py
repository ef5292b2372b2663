"""Every Prometheus metric a Bayport process exports, declared once (prometheus-client's
default registry, so each process also exports its own process_* and python_* metrics).

Names follow Prometheus conventions: a ``bayport_`` prefix, base units (seconds), ``_total``
on counters. Instrumented where the work happens: HTTP by ``api.metrics``' middleware, the bus
by ``rpc.client`` and ``rpc.server`` (the conductor's in-flight operations), job submissions by
the jobs route; the counts of objects (bays by status, pods by phase, IPAM addresses per
subnet, jobs by status) are read from the database when ``/metrics`` is scraped, since any
process may have changed them. A conductor or netd serves its own with ``serve_metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Seconds: from a cached GET (~1 ms) to a slow RPC call or a long SSE stream.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0)

HTTP_REQUESTS = Counter(
    "bayport_http_requests_total", "HTTP requests answered by the API, by route template",
    ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "bayport_http_request_duration_seconds", "Time to answer an HTTP request (an event stream: "
    "its whole life)", ["method", "route", "status"], buckets=LATENCY_BUCKETS)

RPC_REQUESTS = Counter(
    "bayport_rpc_client_requests_total", "RPC calls and casts sent on the bus",
    ["method", "type", "outcome"])
RPC_DURATION = Histogram(
    "bayport_rpc_client_duration_seconds", "Time from sending an RPC to its reply (call) or to "
    "the broker's confirmation (cast)", ["method", "type"], buckets=LATENCY_BUCKETS)
RPC_HANDLED = Counter(
    "bayport_rpc_server_handled_total", "RPC requests a server (conductor) has handled",
    ["method", "outcome"])
RPC_HANDLING = Histogram(
    "bayport_rpc_server_duration_seconds", "Time a server took to handle an RPC request",
    ["method"], buckets=LATENCY_BUCKETS)
CONDUCTOR_IN_FLIGHT = Gauge(
    "bayport_conductor_inflight_operations", "RPC requests being handled right now", ["method"])

JOB_SUBMISSIONS = Counter(
    "bayport_job_submissions_total", "Job submissions to POST /v1/jobs, by outcome", ["outcome"])
EVENT_STREAMS = Gauge("bayport_event_streams_open", "GET /v1/events streams open")

BAYS = Gauge("bayport_bays", "Bays by status", ["status"])
PODS = Gauge("bayport_pods", "Pods Bayport manages, by last observed phase", ["phase"])
JOBS = Gauge("bayport_jobs", "Tenant jobs by status (their outcomes once finished)", ["status"])
IPAM_USED = Gauge("bayport_ipam_addresses_used", "Addresses allocated in a subnet",
                  ["subnet_id", "cidr", "bay_uuid"])
IPAM_FREE = Gauge("bayport_ipam_addresses_free", "Addresses still free in a subnet's pools",
                  ["subnet_id", "cidr", "bay_uuid"])


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """Serve this process's metrics on ``port`` (conductor, netd); None: not at all."""
    if port is not None:
        start_http_server(port, addr=host)
