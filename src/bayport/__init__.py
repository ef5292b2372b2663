"""Bayport: a multi-tenant container-infrastructure control plane.

API -> message bus -> conductor -> drivers / Kubernetes API -> database; see DESIGN.md.
"""

__version__ = "0.1.0"
