"""The README's tour, executed from the README itself: every indented command block under
"A short tour" and its subsections runs, in order, in bash, from the top of the repository,
against ``bayport serve`` (the console script) started with its own BAYPORT_DATA_DIR and
BAYPORT_BIND. The shell has no BAYPORT_URL and no BAYPORT_TOKEN, as a new user's has none.

Only two things are substituted: the tenant id for ``<id>`` and the kubeconfig path (so the
tour does not write into the checkout). Every command must exit 0 and the key outputs must be
what the README promises; a command the README drops, renames or breaks fails the test.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_workloads_cli import kubectl_binary
from tests.product.served import Served, served

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
KUBECONFIG = "testbay.kubeconfig"
# A shell variable assignment with nothing after it (``TOKEN=$(...)``): its effect is the shell's
# state, so every later command of the tour runs after it, as in the user's terminal.
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=(\$\(.*\)|\S+)$")


@dataclass
class Command:
    text: str
    heading: str


def section(markdown: str, title: str) -> list[tuple[str, list[str]]]:
    """(heading, lines) of the level-2 section ``title`` and each of its level-3 subsections."""
    parts: list[tuple[str, list[str]]] = []
    inside = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip() == title
            if inside:
                parts.append((title, []))
            continue
        if not inside:
            continue
        if line.startswith("### "):
            parts.append((line[4:].strip(), []))
            continue
        parts[-1][1].append(line)
    return parts


def code_blocks(lines: list[str]) -> list[list[str]]:
    """Markdown's indented code blocks: runs of lines indented 4 spaces after a blank line."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    previous_blank = True
    for line in lines:
        if current is not None and (line.startswith("    ") or not line.strip()):
            current.append(line[4:] if line.strip() else "")
        elif previous_blank and line.startswith("    ") and line.strip():
            current = [line[4:]]
            blocks.append(current)
        else:
            current = None
        previous_blank = not line.strip()
    return [[ln for ln in block if ln.strip()] for block in blocks]


def complete(text: str) -> bool:
    """False while a quoted string is still open (it goes on on the next line)."""
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def commands(block: list[str], heading: str) -> list[Command]:
    """Join ``\\`` continuations (and a quoted string spanning lines) into one command each."""
    found: list[Command] = []
    pending = ""
    for line in block:
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\") or not complete(pending):
            continue
        found.append(Command(pending, heading))
        pending = ""
    assert not pending, f"unterminated command in the README: {pending!r}"
    return found


def tour() -> list[Command]:
    out: list[Command] = []
    for heading, lines in section(README.read_text(), "A short tour"):
        for block in code_blocks(lines):
            out += commands(block, heading)
    return out


def test_the_tour_is_parsed_as_a_user_reads_it() -> None:
    """The parser itself: the tour is found, in order, with its continuations joined."""
    cmds = tour()
    texts = [c.text for c in cmds]
    assert texts[0].startswith("bayport baymodel-create --name k8s") and "runtime=simulated" in texts[0]
    assert "\n" in texts[0]                          # the backslash continuation stayed one command
    assert any(t.startswith("curl ") and "restbay" in t for t in texts)
    assert {c.heading for c in cmds} >= {"A short tour", "Workloads in a bay", "Pod networking",
                                         "Tenant jobs", "Tokens", "Cleaning up"}
    deletes = [i for i, t in enumerate(texts) if t.startswith("bayport bay-delete")]
    assert deletes and deletes[0] > max(i for i, t in enumerate(texts) if "--bay testbay" in t), \
        "the tour deletes testbay before its last use"
    for text in texts:
        for manifest in re.findall(r"--manifest (\S+)", text):
            assert (REPO / manifest).is_file(), f"the README names {manifest}, which is not in the repository"


def tenant_id(output: str) -> str:
    match = re.search(r"^\| id\s+\| (\S+)\s+\|$", output, re.MULTILINE)
    assert match, f"tenant-create shows no id:\n{output}"
    return match.group(1)


# What a user sees from the tour's key commands (first words of the command → expected text).
EXPECT: dict[str, list[str]] = {
    "bayport bay-create": ["CREATE_COMPLETE"],
    "kubectl --kubeconfig": [],                     # checked below per command
    "bayport bay-update": ["UPDATE_COMPLETE", "| node_count         | 5 "],
    "bayport bay-list": ["testbay", "UPDATE_COMPLETE"],
    "curl ": ['"name":"restbay"'],
    "bayport pod-create": ["| status        | Running"],
    "bayport pod-list": ["redis-master", "Running"],
    "bayport coe-service-create": ["| name ", "redis"],
    "bayport rc-update": ["| replicas       | 3 ", "| ready_replicas | 3 "],
    "bayport port-list": ["ACTIVE", "redis-"],
    "bayport tenant-create": ["acme"],
    "bayport job-submit": ["| status             | Succeeded"],
    "bayport job-list": ["Succeeded"],
    "bayport template-show": ["kind: Job"],
    "bayport token-create": ["bpt_"],
}


def check(command: str, out: str) -> str | None:
    """The expectation ``command`` met (its EXPECT key), after asserting it."""
    for prefix, wanted in EXPECT.items():
        if command.startswith(prefix):
            for text in wanted:
                assert text in out, f"{command!r} did not show {text!r}:\n{out}"
            if "get nodes" in command:
                assert len(re.findall(r"^testbay-node-\d+\s+Ready", out, re.MULTILINE)) == 3, out
            if "get pods,svc,rc" in command:
                assert "pod/redis-master" in out and "service/redis" in out, out
                assert re.search(r"replicationcontroller/redis\s+3\s+3\s+3", out), out
            return prefix
    return None


@pytest.mark.timeout(300)
async def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    kubectl_binary()
    cmds = tour()
    kubeconfig = tmp_path / KUBECONFIG
    async with served(tmp_path / "data") as server:
        assert "BAYPORT_URL" not in server.env and "BAYPORT_TOKEN" not in server.env
        state: list[str] = []            # the shell's variable assignments so far
        tenant: str | None = None
        met: set[str] = set()
        for cmd in cmds:
            text = cmd.text.replace(KUBECONFIG, str(kubeconfig))
            if "<id>" in text:
                assert tenant is not None, f"{cmd.text!r} needs a tenant id the tour never showed"
                text = text.replace("<id>", tenant)
            code, out, err = await server.shell("\n".join([*state, text]), cwd=REPO)
            assert code == 0, (f"README ({cmd.heading}): {cmd.text!r} exited {code}\n"
                               f"stdout:\n{out}\nstderr:\n{err}\nserver log:\n{server.log_text()[-3000:]}")
            if ASSIGNMENT.match(text):
                state.append(text)
            if cmd.text.startswith("bayport tenant-create"):
                tenant = tenant_id(out)
            prefix = check(cmd.text, out + err)
            if prefix:
                met.add(prefix)
        missing = set(EXPECT) - met
        assert not missing, f"the README's tour no longer runs {sorted(missing)}"
        await after_the_tour(server)


async def after_the_tour(server: Served) -> None:
    """The cleanup the tour ends with really cleaned up: no bay, no template left."""
    assert await server.cli_json("bay-list") == []
    assert await server.cli_json("baymodel-list") == []
    async with server.http() as http:
        assert json.loads((await http.get("/openapi.json")).text)["openapi"].startswith("3.")
