"""The controller's small parts on their own: per-pod ordering and coalescing, the uid-tested
annotation patch, and ownership by hosting conductor or rendezvous hashing."""

from __future__ import annotations

import asyncio

from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Pod

from bayport.network.controller import ConductorShare, EveryBay, rendezvous_owner
from bayport.network.controller.ownership import Candidate
from bayport.network.controller.pods import PodView, annotation_patch
from bayport.network.controller.queue import Kind, PerKeyQueue


async def test_one_keys_actions_run_in_order_and_never_together() -> None:
    queue = PerKeyQueue("t")
    log: list[str] = []
    running: set[str] = set()

    def step(key: str, label: str, pause: float) -> object:
        async def run() -> None:
            assert key not in running, f"{key} ran twice at once"
            running.add(key)
            await asyncio.sleep(pause)
            log.append(f"{key}:{label}")
            running.discard(key)
        return run

    for i in range(3):
        queue.submit("a", Kind.OTHER, step("a", str(i), 0.01 * (3 - i)))  # type: ignore[arg-type]
        queue.submit("b", Kind.OTHER, step("b", str(i), 0.0))  # type: ignore[arg-type]
    await queue.idle()
    assert [e for e in log if e.startswith("a")] == ["a:0", "a:1", "a:2"]
    assert [e for e in log if e.startswith("b")] == ["b:0", "b:1", "b:2"]
    assert log.index("b:2") < log.index("a:0")  # other keys do not wait for a slow one
    assert len(queue) == 0


async def test_newest_ensure_replaces_a_pending_one_and_a_release_drops_them() -> None:
    queue = PerKeyQueue("t")
    ran: list[str] = []
    gate = asyncio.Event()

    async def blocker() -> None:
        await gate.wait()
        ran.append("first")

    def note(label: str) -> object:
        async def run() -> None:
            ran.append(label)
        return run

    queue.submit("pod", Kind.ENSURE, blocker)
    await asyncio.sleep(0)
    superseded = queue.submit("pod", Kind.ENSURE, note("older"))  # type: ignore[arg-type]
    queue.submit("pod", Kind.ENSURE, note("newer"))  # type: ignore[arg-type]
    gate.set()
    await queue.idle()
    assert ran == ["first", "newer"] and superseded.done()

    ran.clear()
    gate.clear()
    queue.submit("pod", Kind.ENSURE, blocker)
    await asyncio.sleep(0)
    dropped = queue.submit("pod", Kind.ENSURE, note("pointless"))  # type: ignore[arg-type]
    queue.submit("pod", Kind.RELEASE, note("release"))  # type: ignore[arg-type]
    assert dropped.done()
    gate.set()
    await queue.idle()
    assert ran == ["first", "release"]


async def test_a_failing_action_does_not_stop_the_next_and_close_cancels() -> None:
    queue = PerKeyQueue("t")
    ran: list[str] = []

    async def boom() -> None:
        raise RuntimeError("boom")

    async def after() -> None:
        ran.append("after")

    async def forever() -> None:
        await asyncio.Event().wait()

    queue.submit("k", Kind.OTHER, boom)
    await queue.run("k", Kind.OTHER, after)
    assert ran == ["after"]
    stuck = queue.submit("k", Kind.OTHER, forever)
    await asyncio.sleep(0)
    await queue.close()
    assert stuck.done() and len(queue) == 0
    assert queue.submit("k", Kind.OTHER, after).done()  # closed: nothing runs any more


def _pod(annotations: dict[str, str] | None) -> Pod:
    return Pod(metadata=ObjectMeta(name="p", namespace="ns", uid="u-1", annotations=annotations,
                                   resourceVersion="7"),
               spec=PodSpec(containers=[Container(name="c")]))


def test_the_patch_tests_the_uid_and_keeps_other_annotations() -> None:
    wanted = {"kuryr.org/neutron-port": "{}", "kuryr.org/neutron-subnet": "{}", "bayport.io/port-id": "x"}
    bare = PodView.of(_pod(None))
    assert bare is not None and bare.port_annotations == (None, None, None)
    assert annotation_patch(bare, wanted) == [
        {"op": "test", "path": "/metadata/uid", "value": "u-1"},
        {"op": "add", "path": "/metadata/annotations", "value": wanted}]
    other = PodView.of(_pod({"team": "a"}))
    assert other is not None
    ops = annotation_patch(other, wanted)
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": "u-1"}
    assert [o["path"] for o in ops[1:]] == ["/metadata/annotations/kuryr.org~1neutron-port",
                                            "/metadata/annotations/kuryr.org~1neutron-subnet",
                                            "/metadata/annotations/bayport.io~1port-id"]
    host = Pod(metadata=ObjectMeta(name="h", uid="u-2"), spec=PodSpec(containers=[], hostNetwork=True))
    view = PodView.of(host)
    assert view is not None and not view.needs_port and view.namespace == "default"


async def test_ownership_hosted_here_or_by_rendezvous_over_live_conductors() -> None:
    bays = [Candidate(uuid=f"bay-{i}", host=None, project_id="p") for i in range(40)]
    bays += [Candidate(uuid="hosted-here", host="c1", project_id="p"),
             Candidate(uuid="hosted-there", host="c2", project_id="p")]
    members = {"c1", "c2", "c3"}

    async def live(_: object) -> set[str]:
        return members

    shares = {m: await ConductorShare(m, live).owned(None, bays) for m in members}  # type: ignore[arg-type]
    assert "hosted-here" in shares["c1"] and "hosted-there" in shares["c2"]
    assert not any("hosted-here" in shares[m] for m in ("c2", "c3"))
    for bay in bays[:40]:
        owners = [m for m in members if bay.uuid in shares[m]]
        assert owners == [rendezvous_owner(bay.uuid, members)]
    assert all(len(shares[m]) >= 5 for m in members)  # spread, not all on one
    assert await EveryBay().owned(None, bays) == {b.uuid for b in bays}  # type: ignore[arg-type]
