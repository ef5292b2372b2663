"""What Heat's template validation rejects, for the fake Heat: dangling references.

Checks one HOT template and, through the request's ``files``, every nested template
and script it uses: ``get_param`` names a declared parameter, ``get_resource`` /
``get_attr`` / ``depends_on`` a declared resource, ``get_attr`` on a nested stack
(or a ResourceGroup of them) one of its outputs, ``get_file`` a file sent along,
conditions exist, and a nested template gets exactly the parameters it declares
(all required ones, no unknown ones). Returns the problems as Heat-like messages.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import yaml

GROUP = "OS::Heat::ResourceGroup"


class HOTLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Heat's reading of YAML: ``2018-08-31`` stays a string, as Heat keeps it."""


HOTLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


@functools.lru_cache(maxsize=64)
def _parse(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=HOTLoader)  # type: ignore[no-any-return]


def parse_hot(text: str) -> dict[str, Any]:
    return copy.deepcopy(_parse(text))


def nested_template(type_name: str, files: dict[str, str]) -> dict[str, Any] | None:
    if type_name in files and type_name.endswith(".yaml"):
        return parse_hot(files[type_name])
    return None


def check_template(template: dict[str, Any], files: dict[str, str], where: str = "template") -> list[str]:
    problems: list[str] = []
    if "heat_template_version" not in template:
        problems.append(f"{where}: no heat_template_version")
    params = template.get("parameters") or {}
    resources = template.get("resources") or {}
    conditions = template.get("conditions") or {}

    def member_outputs(resource: dict[str, Any]) -> set[str] | None:
        type_name = resource.get("type", "")
        if type_name == GROUP:
            type_name = resource.get("properties", {}).get("resource_def", {}).get("type", "")
        nested = nested_template(type_name, files)
        return None if nested is None else set((nested.get("outputs") or {}).keys())

    def check_condition(value: Any, at: str) -> None:
        if isinstance(value, str) and value not in conditions:
            problems.append(f"{where}: {at}: unknown condition {value!r}")
        elif isinstance(value, dict):
            walk(value, at)

    def walk(node: Any, at: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{at}[{i}]")
            return
        if not isinstance(node, dict):
            return
        if len(node) == 1:
            (fn, args), = node.items()
            if fn == "get_param":
                name = args[0] if isinstance(args, list) else args
                if name not in params:
                    problems.append(f"{where}: {at}: The Parameter ({name}) was not defined in template")
            elif fn == "get_resource" and args not in resources:
                problems.append(f"{where}: {at}: The specified reference \"{args}\" was not found")
            elif fn == "get_attr":
                target = resources.get(args[0])
                if target is None:
                    problems.append(f"{where}: {at}: The specified reference \"{args[0]}\" was not found")
                else:
                    outputs = member_outputs(target)
                    if outputs is not None and args[1] not in outputs:
                        problems.append(f"{where}: {at}: {args[0]} has no attribute {args[1]!r}")
            elif fn == "get_file" and args not in files:
                problems.append(f"{where}: {at}: Could not fetch remote template \"{args}\"")
            elif fn == "if":
                check_condition(args[0], at)
                walk(args[1:], at)
                return
        for key, value in node.items():
            walk(value, f"{at}.{key}")

    for name, spec in params.items():
        if "type" not in spec:
            problems.append(f"{where}: parameter {name} has no type")
    for name, cond in conditions.items():
        walk(cond, f"conditions.{name}")
    for name, resource in resources.items():
        at = f"resources.{name}"
        if "type" not in resource:
            problems.append(f"{where}: {at}: no type")
            continue
        if "condition" in resource:
            check_condition(resource["condition"], at)
        depends = resource.get("depends_on", [])
        for dep in [depends] if isinstance(depends, str) else depends:
            if dep not in resources:
                problems.append(f"{where}: {at}: depends_on unknown resource {dep!r}")
        walk(resource.get("properties", {}), at)
        type_name, props = resource["type"], resource.get("properties", {})
        if type_name == GROUP:
            type_name = props.get("resource_def", {}).get("type", "")
            props = props.get("resource_def", {}).get("properties", {})
        nested = nested_template(type_name, files)
        if type_name.endswith(".yaml") and nested is None:
            problems.append(f"{where}: {at}: nested template {type_name} was not sent in files")
        if nested is not None:
            problems.extend(check_properties(nested, props, f"{where}: {at} ({type_name})"))
            problems.extend(check_template(nested, files, type_name))
    for name, output in (template.get("outputs") or {}).items():
        walk(output.get("value"), f"outputs.{name}")
    return problems


def check_properties(nested: dict[str, Any], props: dict[str, Any], at: str) -> list[str]:
    declared = nested.get("parameters") or {}
    problems = [f"{at}: The Parameter ({name}) was not defined in template"
                for name in props if name not in declared]
    problems += [f"{at}: The Parameter ({name}) was not provided"
                 for name, spec in declared.items() if "default" not in spec and name not in props]
    return problems
