"""The embedded Kubernetes-API-compatible cluster engine.

``host.EmbeddedCluster`` runs one cluster: the object ``store``, the controllers that make objects
live (``controllers``, ``runtime``) and the HTTP API (``http``) kubectl and lightkube talk to. Only
``bayport.drivers.local`` imports this package; the rest of Bayport reaches a cluster over HTTP.
"""
