"""The batch/v1 Job controller: runs pods until enough succeed, or too many fail.

Pods get generateName ``<job>-``, a controller ownerReference and the job-name / controller-uid
labels (plain and batch.kubernetes.io/). Succeeded and failed pods are counted once each (the
controller remembers which pod uids it has counted, so deleting a finished pod never un-counts
it); with restartPolicy OnFailure container restarts count towards backoffLimit too, as in
Kubernetes. Parallelism, completions (or work-queue mode when completions is null),
activeDeadlineSeconds and suspend are honoured; the job ends with a Complete or Failed
(BackoffLimitExceeded / DeadlineExceeded) condition, and ttlSecondsAfterFinished deletes it and
its pods (the store cascades) that long after it finished. Replacement pods are created at once:
the embedded engine does not apply the 10 s pod-failure back-off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.clock import now_rfc3339, parse_rfc3339
from bayport.cluster.controllers.events import NORMAL, WARNING, EventRecorder
from bayport.cluster.controllers.expectations import Expectations
from bayport.cluster.controllers.informer import Informer, object_key, split_key
from bayport.cluster.controllers.ownership import controller_of, is_ready, is_terminal
from bayport.cluster.controllers.replication import OWNER_INDEX, deletion_rank, pod_summary, template_pod
from bayport.cluster.controllers.workqueue import WorkQueue
from bayport.cluster.errors import ApiError
from bayport.cluster.store import Store
from bayport.cluster.watch import ADDED, DELETED

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "Job"
COMPONENT = "job-controller"
BURST = 500


def finished_at(job: Mapping[str, Any]) -> float | None:
    """When the job reached Complete or Failed, or None while it runs."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return parse_rfc3339(cond.get("lastTransitionTime")) or time.time()
    return None


def _condition(kind: str, reason: str, message: str, now: str) -> Obj:
    return {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


class JobController:
    def __init__(self, store: Store, jobs: Informer, pods: Informer, recorder: EventRecorder) -> None:
        self.store = store
        self.jobs = jobs
        self.pods = pods
        self.recorder = recorder
        self.queue = WorkQueue("job", self.reconcile)
        self.expectations = Expectations()
        self._keys: dict[str, str] = {}                # job uid → key
        self._counted: dict[str, dict[str, bool]] = {}  # job uid → pod uid → succeeded?
        jobs.add_handler(self._on_job)
        pods.add_handler(self._on_pod)

    def _on_job(self, kind: str, job: Obj, old: Obj | None) -> None:
        key = object_key(job)
        uid = job["metadata"]["uid"]
        if kind == DELETED:
            self._keys.pop(uid, None)
            self._counted.pop(uid, None)
            self.expectations.forget(uid)
            self.queue.forget(key)
            return
        self._keys[uid] = key
        self.queue.add(key)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != KIND:
            return
        owner = str(ref.get("uid"))
        if kind == ADDED:
            self.expectations.observed_create(owner, pod["metadata"]["name"])
        elif kind == DELETED:
            self.expectations.observed_delete(owner, pod["metadata"]["uid"])
        elif old is not None and pod_summary(old) == pod_summary(pod):
            return
        key = self._keys.get(owner)
        if key is not None:
            self.queue.add(key)

    # --- reconcile --------------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        try:
            job = self.store.get_snapshot("jobs", namespace, name)
        except ApiError:
            return
        uid = job["metadata"]["uid"]
        spec = job.get("spec") or {}
        status: Obj = dict(job.get("status") or {})
        done = finished_at(job)
        owned = self.pods.by_index(OWNER_INDEX, uid)
        pending_deletes = self.expectations.pending_deletes(uid)
        active = [p for p in owned if not is_terminal(p) and p["metadata"]["uid"] not in pending_deletes]
        if done is not None:
            self._delete(job, active)
            self._expire(job, done)
            return
        counted = self._count(uid, status, owned)
        succeeded = sum(1 for ok in counted.values() if ok)
        failed = len(counted) - succeeded
        now = now_rfc3339()
        template_spec = (spec.get("template") or {}).get("spec") or {}
        restarts = 0
        if template_spec.get("restartPolicy") == "OnFailure":
            restarts = sum(int(c.get("restartCount") or 0) for p in active
                           for c in (p.get("status") or {}).get("containerStatuses") or ())
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1) if spec.get("parallelism") is not None else 1)
        backoff_limit = int(spec.get("backoffLimit", 6) if spec.get("backoffLimit") is not None else 6)
        suspended = bool(spec.get("suspend"))
        conditions = [c for c in status.get("conditions") or () if c.get("type") != "Suspended"]
        if not suspended and not status.get("startTime"):
            status["startTime"] = now
        start = parse_rfc3339(status.get("startTime"))
        deadline = spec.get("activeDeadlineSeconds")
        finish: Obj | None = None
        if failed + restarts > backoff_limit:
            finish = _condition("Failed", "BackoffLimitExceeded",
                                "Job has reached the specified backoff limit", now)
        elif deadline is not None and start is not None and time.time() - start >= float(deadline):
            finish = _condition("Failed", "DeadlineExceeded",
                                "Job was active longer than specified deadline", now)
        elif (completions is not None and succeeded >= int(completions)) or \
                (completions is None and succeeded > 0 and not active):
            finish = _condition("Complete", "CompletionsReached",
                                "Reached expected number of succeeded pods", now)
        if finish is not None or suspended:
            self._delete(job, active)
            active = []
        else:
            names = {p["metadata"]["name"] for p in active}
            in_flight = [n for n in self.expectations.pending_creates(uid) if n not in names]
            if completions is None:
                wanted = 0 if succeeded > 0 else parallelism
            else:
                wanted = max(0, min(parallelism, int(completions) - succeeded))
            diff = wanted - len(active) - len(in_flight)
            if diff > 0:
                self._create(job, min(diff, BURST))
            elif diff < 0:
                victims = sorted(active, key=deletion_rank)[:-diff]
                self._delete(job, victims)
                active = [p for p in active if p not in victims]
            if deadline is not None and start is not None:
                self.queue.add_after(key, max(0.0, start + float(deadline) - time.time()) + 0.01)
        if suspended:
            conditions.append({"type": "Suspended", "status": "True", "lastProbeTime": now,
                               "lastTransitionTime": now, "reason": "JobSuspended",
                               "message": "Job suspended"})
        if finish is not None:
            conditions.append(finish)
            if finish["type"] == "Complete":
                status["completionTime"] = now
                self.recorder.record(job, NORMAL, "Completed", "Job completed", component=COMPONENT)
            else:
                self.recorder.record(job, WARNING, finish["reason"], finish["message"], component=COMPONENT)
        status.update({"active": len(active), "ready": sum(1 for p in active if is_ready(p)),
                       "succeeded": succeeded, "failed": failed, "terminating": 0,
                       "uncountedTerminatedPods": {}})
        if conditions:
            status["conditions"] = conditions
        else:
            status.pop("conditions", None)
        self._write_status(namespace, name, job, status)
        if finish is not None:
            self._expire(job, time.time())

    def _count(self, uid: str, status: Mapping[str, Any], owned: list[Obj]) -> dict[str, bool]:
        counted = self._counted.get(uid)
        if counted is None:
            counted = {}
            prior_ok = int(status.get("succeeded") or 0)
            prior_failed = int(status.get("failed") or 0)
            # a restarted controller: pods already reflected in status must not count twice
            for pod in owned:
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Succeeded" and prior_ok > 0:
                    counted[pod["metadata"]["uid"]] = True
                    prior_ok -= 1
                elif phase == "Failed" and prior_failed > 0:
                    counted[pod["metadata"]["uid"]] = False
                    prior_failed -= 1
            for i in range(prior_ok):
                counted[f"uncounted-ok-{i}"] = True
            for i in range(prior_failed):
                counted[f"uncounted-failed-{i}"] = False
            self._counted[uid] = counted
        for pod in owned:
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                counted.setdefault(pod["metadata"]["uid"], phase == "Succeeded")
        return counted

    def _create(self, job: Obj, count: int) -> None:
        meta = job["metadata"]
        template = (job.get("spec") or {}).get("template") or {}
        labels = {"batch.kubernetes.io/controller-uid": meta["uid"],
                  "batch.kubernetes.io/job-name": meta["name"],
                  "controller-uid": meta["uid"], "job-name": meta["name"]}
        for _ in range(count):
            try:
                pod = self.store.create_owned("pods", template_pod(job, template, labels))
            except ApiError as exc:
                self.recorder.record(job, WARNING, "FailedCreate", f"Error creating: {exc.message}",
                                     component=COMPONENT)
                raise
            self.expectations.expect_create(meta["uid"], pod["metadata"]["name"])
            self.recorder.record(job, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                                 component=COMPONENT)

    def _delete(self, job: Obj, victims: list[Obj]) -> None:
        uid = job["metadata"]["uid"]
        for pod in victims:
            meta = pod["metadata"]
            self.expectations.expect_delete(uid, meta["uid"])
            try:
                self.store.delete_snapshot("pods", meta.get("namespace"), meta["name"])
            except ApiError:
                self.expectations.observed_delete(uid, meta["uid"])
                continue
            self.recorder.record(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}",
                                 component=COMPONENT)

    def _write_status(self, namespace: str | None, name: str, job: Obj, status: Obj) -> None:
        if status == (job.get("status") or {}):
            return

        def write(obj: Obj) -> None:
            obj["status"] = status

        self.store.mutate("jobs", namespace, name, write)

    def _expire(self, job: Obj, finished: float) -> None:
        """Delete the job (and, by cascade, its pods) ttlSecondsAfterFinished after it finished."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        remaining = finished + float(ttl) - time.time()
        meta = job["metadata"]
        if remaining > 0:
            self.queue.add_after(object_key(job), remaining)
            return
        try:
            self.store.delete_snapshot("jobs", meta.get("namespace"), meta["name"],
                                       propagation="Background")
        except ApiError:
            return
