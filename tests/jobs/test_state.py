"""From a Job and its pods, as the cluster reports them, to the record; and merging a record
into the stored row without ever going backwards, whatever order the two streams arrive in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from bayport.jobs.state import DELETED_UNFINISHED, RECORD_FIELDS, Observation, job_view, merge, pod_view

T0 = datetime(2025, 5, 1, 10, 0, 0, tzinfo=UTC)


def _ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(conditions: list[dict[str, Any]] | None = None, **status: Any) -> Any:
    body: dict[str, Any] = {"metadata": {"name": "job-t-1", "uid": "k8s-uid"},
                            "status": {"startTime": _ts(0), **status}}
    if conditions:
        body["status"]["conditions"] = conditions
    return Job.from_dict(body)


def done(kind: str, reason: str, message: str, at: float) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": _ts(at)}


def pod(phase: str, state: dict[str, Any] | None = None, name: str = "job-t-1-abcde") -> Any:
    statuses = [{"name": "copy", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0,
                 "state": state}] if state else []
    return Pod.from_dict({"metadata": {"name": name, "creationTimestamp": _ts(0)},
                          "status": {"phase": phase, "containerStatuses": statuses}})


def terminated(code: int, start: float, end: float) -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                           "startedAt": _ts(start), "finishedAt": _ts(end)}}


def row(status: str = "Pending", **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {f: None for f in RECORD_FIELDS}
    base.update(status=status, deleted_in_cluster=False, created_at=T0 - timedelta(seconds=5))
    base.update(values)
    return base


def test_waiting_pod_is_pending_with_its_reason() -> None:
    obs = Observation()
    obs.saw_job(job_view(job()))
    obs.saw_pod("p", pod_view(pod("Pending", {"waiting": {"reason": "ContainerCreating"}})))
    rec = obs.record()
    assert rec["status"] == "Pending" and rec["message"] == "ContainerCreating"
    assert rec["k8s_uid"] == "k8s-uid" and rec["started_at"] is None


def test_running_pod_gives_start_time() -> None:
    obs = Observation()
    obs.saw_pod("p", pod_view(pod("Running", {"running": {"startedAt": _ts(1)}})))
    rec = obs.record()
    assert rec["status"] == "Running" and rec["started_at"] == T0 + timedelta(seconds=1)


def test_complete_job_with_its_pod_is_succeeded() -> None:
    obs = Observation()
    obs.saw_pod("p", pod_view(pod("Succeeded", terminated(0, 1, 2))))
    obs.saw_job(job_view(job([done("Complete", "CompletionsReached", "done", 2)], completionTime=_ts(2))))
    rec = obs.record()
    assert rec["status"] == "Succeeded" and rec["exit_code"] == 0 and rec["message"] is None
    assert rec["started_at"] == T0 + timedelta(seconds=1) and rec["finished_at"] == T0 + timedelta(seconds=2)


def test_failed_job_says_why_and_the_last_exit_code() -> None:
    obs = Observation()
    obs.saw_pod("p1", pod_view(pod("Failed", terminated(3, 1, 2), name="p1")))
    rec = obs.record()
    assert rec["status"] == "Running" and "1 failed attempt(s)" in rec["message"]
    obs.saw_pod("p2", pod_view(pod("Failed", terminated(4, 3, 4), name="p2")))
    obs.saw_job(job_view(job([done("Failed", "BackoffLimitExceeded", "Job has reached the specified "
                                                                      "backoff limit", 5)])))
    rec = obs.record()
    assert rec["status"] == "Failed" and rec["exit_code"] == 4
    assert rec["message"] == ("BackoffLimitExceeded: Job has reached the specified backoff limit "
                              "(the command exited with code 4)")
    assert rec["finished_at"] == T0 + timedelta(seconds=5)


def test_job_deleted_before_it_finished_is_failed() -> None:
    obs = Observation()
    obs.saw_pod("p", pod_view(pod("Running", {"running": {"startedAt": _ts(1)}})))
    obs.saw_job(job_view(job(), deleted=True))
    rec = obs.record()
    assert rec["status"] == "Failed" and rec["message"] == DELETED_UNFINISHED
    assert rec["deleted_in_cluster"] is True
    assert not obs.settled
    obs.saw_pod("p", pod_view(pod("Running"), deleted=True))
    assert obs.settled


def _apply(current: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return {**current, **merge(current, record)}


def test_every_event_order_ends_in_the_same_record() -> None:
    events = [
        ("job", job_view(job())),
        ("pod", pod_view(pod("Running", {"running": {"startedAt": _ts(1)}}))),
        ("pod", pod_view(pod("Succeeded", terminated(0, 1, 2)))),
        ("job", job_view(job([done("Complete", "CompletionsReached", "ok", 2)], completionTime=_ts(2)))),
        ("job", job_view(job([done("Complete", "CompletionsReached", "ok", 2)], completionTime=_ts(2)),
                         deleted=True)),
        ("pod", pod_view(pod("Succeeded", terminated(0, 1, 2)), deleted=True)),
    ]
    finals = set()
    for order in itertools.permutations(events):
        obs, current = Observation(), row()
        for kind, view in order:
            if kind == "job":
                obs.saw_job(view)
            else:
                obs.saw_pod("p", view)
            current = _apply(current, obs.record())
        finals.add(tuple(sorted((k, str(v)) for k, v in current.items())))
        assert current["status"] == "Succeeded" and current["exit_code"] == 0
    # Every order of job/pod events that saw the final states reaches exactly one record.
    assert len({dict(f)["finished_at"] for f in finals}) == 1


def test_a_finished_row_is_never_reopened_but_gaps_fill() -> None:
    current = row("Succeeded", finished_at=T0 + timedelta(seconds=2), started_at=T0)
    late = Observation()
    late.saw_pod("p", pod_view(pod("Succeeded", terminated(0, 1, 2))))
    changes = merge(current, late.record())
    assert changes == {"exit_code": 0}
    failed = row("Failed", message="boom", finished_at=T0)
    assert merge(failed, {**row("Succeeded"), "message": None}) == {}


def test_times_are_clamped_to_creation_and_finish_is_filled() -> None:
    current = row("Pending", created_at=T0 + timedelta(seconds=0.7))
    obs = Observation()
    obs.saw_pod("p", pod_view(pod("Succeeded", terminated(0, 0, 0))))
    obs.saw_job(job_view(job([done("Complete", "CompletionsReached", "ok", 0)], completionTime=_ts(0))))
    changes = merge(current, obs.record())
    assert changes["started_at"] == T0 + timedelta(seconds=0.7)
    assert changes["finished_at"] == T0 + timedelta(seconds=0.7)
    gone = merge(row("Running"), {**row("Failed"), "message": "gone", "deleted_in_cluster": True})
    assert gone["status"] == "Failed" and gone["finished_at"] is not None and gone["deleted_in_cluster"]
