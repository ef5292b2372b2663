"""Everything Bayport knows about Kubernetes objects before and after they reach a cluster.

``manifest`` parses what a user sent (line/column errors), ``convert`` turns the seed's
``v1beta3``/``v1beta1`` into ``v1``, ``validate`` names the missing field's path, ``fetch``
downloads a ``manifest_url`` under the SSRF rules, ``kinds`` describes pods/services/rcs
(what a row records and how its status is read), and ``client`` is the per-bay lightkube
client the conductor (workloads, jobs) uses to reach each bay's Kubernetes API.
"""
