"""Tenant job templates and rendering (reference 002), with no I/O.

``naming`` checks tenant ids and names jobs ``job-{tenant}-{hash}``; ``template`` holds the
seed's default Job template, validates a replacement and renders one job from it;
``submission`` checks a request's command and volume mounts; ``state`` turns what the
cluster reports about a Job and its pods into the job record. The API validates with these,
the conductor renders and observes with them (``bayport.conductor.jobs``).
"""

from __future__ import annotations

JOB_UUID_LABEL = "bayport.io/job-uuid"
TENANT_LABEL = "bayport.io/tenant"
