"""Pod networking: IPAM (``ipam``), the pod-watching controller (``controller``) and the
``bayport-cni`` plugin (``cni``) that binds a pod to the port the controller annotated.

The three meet only through the pod annotations named in ``annotation_keys``.
"""
