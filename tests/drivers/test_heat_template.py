"""The template the heat driver ships: internally consistent, every node script fully filled in,
the outputs the driver reads declared; and the small pure helpers around it."""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from typing import Any

import pytest

from bayport.drivers.heat import ca_data_of, load_template, stack_name
from bayport.objects.bay import Bay
from tests.drivers.hot_check import check_template, parse_hot

PLACEHOLDER = re.compile(r"__[A-Z_]+__")


def servers(files: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, text in files.items():
        if name.endswith(".yaml"):
            for resource in parse_hot(text)["resources"].values():
                if resource["type"] == "OS::Nova::Server":
                    found.append((name, resource["properties"]["user_data"]["str_replace"]))
    return found


def scripts_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        if set(node) == {"get_file"}:
            return [node["get_file"]]
        return [s for value in node.values() for s in scripts_in(value)]
    if isinstance(node, list):
        return [s for value in node for s in scripts_in(value)]
    return []


def test_the_template_and_its_nested_templates_are_consistent() -> None:
    template, files = load_template()
    assert check_template(parse_hot(template), files) == []


def test_the_driver_reads_only_declared_outputs() -> None:
    template, _ = load_template()
    outputs = parse_hot(template)["outputs"]
    assert {"api_address", "kube_masters", "kube_minions", "admin_token", "ca_cert"} <= set(outputs)


def test_every_placeholder_in_a_node_script_is_filled_in() -> None:
    _, files = load_template()
    checked = 0
    for template_name, replace in servers(files):
        used = {p for script in scripts_in(replace["template"]) for p in PLACEHOLDER.findall(files[script])}
        assert used <= set(replace["params"]), f"{template_name}: unfilled {used - set(replace['params'])}"
        checked += 1
    assert checked == 2


@pytest.mark.parametrize("role_script", ["master-init.sh", "master-join.sh", "minion-join.sh"])
def test_node_scripts_are_valid_bash(role_script: str) -> None:
    _, files = load_template()
    script = files["install-kubeadm.sh"] + "\n" + files[role_script]
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@pytest.mark.parametrize(("name", "expected"), [
    ("testbay", "testbay"), ("my bay/one", "my-bay-one"), ("9lives", "bay-9lives"),
    (None, "bay"), ("---", "bay"), ("k8s_prod.v2", "k8s_prod.v2")])
def test_stack_names_follow_heats_rule(name: str | None, expected: str) -> None:
    bay = Bay(uuid=str(uuid.uuid4()), name=name)
    result = stack_name(bay)
    assert result == f"{expected}-{bay.uuid[:8]}"
    assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_.-]*", result)


def test_ca_data_is_base64_of_the_pem_whatever_form_the_output_takes() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
    b64 = base64.b64encode(pem.encode()).decode()
    assert ca_data_of(f'{{"ca": "{b64}"}}') == b64
    assert ca_data_of({"1": b64}) == b64
    assert ca_data_of(b64) == b64
    assert ca_data_of(pem) == base64.b64encode(pem.strip().encode()).decode()
    assert ca_data_of(None) is None
    assert ca_data_of("{}") is None
    assert ca_data_of("not base64 !") is None
