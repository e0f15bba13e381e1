"""Each host module's argument_spec says what its DOCUMENTATION says (issue 18).

What `ansible-test sanity --test validate-modules` checks of a module's options, run on the spec the module really hands
to AnsibleModule (its main() called with AnsibleModule replaced by a recorder): the same options, each with the
documented type stated (no option left to Ansible's implicit `str`), the same `required`, the same default (of the same
type: `""` is not `None`), the same `choices` and list `elements`, suboptions alike, and no key AnsibleModule does not
know (a misspelt `type` is silently ignored by Ansible). `ansible-doc` and the collection's users read the
documentation; a default changed in one place and not the other is a promise broken, and fails here by name.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import ansible.module_utils
import pytest
import yaml
from ansible.module_utils import basic

from tests.unit.host_modules import REPO, _import, load

MODULES = sorted(str(path.relative_to(REPO)) for path in (REPO / "roles").glob("*/library/*.py"))

# The keys of an option AnsibleModule reads (ansible.module_utils.common.parameters and the validators).
SPEC_KEYS = {"type", "required", "default", "choices", "elements", "no_log", "aliases", "options", "fallback",
             "apply_defaults", "deprecated_aliases", "removed_in_version", "removed_at_date", "removed_from_collection",
             "mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by"}
DOC_KEYS = {"description", "type", "required", "default", "choices", "elements", "aliases", "suboptions", "version_added", "no_log"}
MISSING = object()


class Recorded(Exception):
    """Raised by the recorder in place of AnsibleModule, carrying what the module handed it."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("AnsibleModule called")
        self.kwargs = kwargs


class Recorder:
    def __init__(self, **kwargs: Any) -> None:
        raise Recorded(kwargs)


def documentation(relative: str) -> dict[str, Any]:
    """The module's DOCUMENTATION block, read from its source (as ansible-doc reads it, without running the module)."""
    for node in ast.parse((REPO / relative).read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "DOCUMENTATION":
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            return dict(yaml.safe_load(node.value.value))
    raise AssertionError(f"{relative} has no DOCUMENTATION")


def register_utils(path: Path) -> None:
    """The role's module_utils under ansible.module_utils, whatever their names (load() waits only for release_*)."""
    waiting = sorted((path.parent.parent / "module_utils").glob("*.py"))
    while waiting:
        left = []
        for util in waiting:
            try:
                loaded = _import(util)
            except ModuleNotFoundError as exc:
                if not (exc.name or "").startswith("ansible.module_utils."):
                    raise
                left.append(util)
                continue
            sys.modules[f"ansible.module_utils.{util.stem}"] = loaded
            setattr(ansible.module_utils, util.stem, loaded)
        assert len(left) < len(waiting), f"module_utils that cannot be loaded: {[util.name for util in left]}"
        waiting = left


def recorded_spec(relative: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the module's main() hands AnsibleModule (argument_spec and the rest), without letting it run further."""
    register_utils(REPO / relative)
    module = load(relative)
    monkeypatch.setattr(basic, "AnsibleModule", Recorder)  # modules that import it inside main()
    if hasattr(module, "AnsibleModule"):
        monkeypatch.setattr(module, "AnsibleModule", Recorder)
    with pytest.raises(Recorded) as recorded:
        module.main()
    return recorded.value.kwargs


def drift(doc_options: dict[str, Any] | None, spec: dict[str, Any], where: str = "") -> list[str]:
    """Every difference between documented options and an argument spec, one line each naming the option and both sides."""
    doc_options = doc_options or {}
    problems = []
    for name in sorted(set(doc_options) - set(spec)):
        problems.append(f"{where}{name}: documented, not in argument_spec")
    for name in sorted(set(spec) - set(doc_options)):
        problems.append(f"{where}{name}: in argument_spec, not documented")
    for name in sorted(set(doc_options) & set(spec)):
        doc, option = doc_options[name] or {}, spec[name]
        unknown = sorted(set(option) - SPEC_KEYS)
        if unknown:
            problems.append(f"{where}{name}: argument_spec key {', '.join(unknown)} is not one AnsibleModule reads")
        if sorted(set(doc) - DOC_KEYS):
            problems.append(f"{where}{name}: documentation key {', '.join(sorted(set(doc) - DOC_KEYS))} is not one ansible-doc reads")
        if "type" not in option or option["type"] is None:
            problems.append(f"{where}{name}: argument_spec states no type (documented {doc.get('type')})")
        elif option["type"] != doc.get("type"):
            problems.append(f"{where}{name}: type {doc.get('type')} in DOCUMENTATION, {option['type']} in argument_spec")
        if bool(doc.get("required", False)) is not bool(option.get("required", False)) or not isinstance(option.get("required", False), bool):
            problems.append(f"{where}{name}: required {doc.get('required', False)} in DOCUMENTATION, {option.get('required', False)} in argument_spec")
        documented, given = doc.get("default", MISSING), option.get("default", MISSING)
        if documented is MISSING and given is not MISSING and given is not None:
            problems.append(f"{where}{name}: default {given!r} in argument_spec, none documented")
        elif documented is not MISSING and (given is MISSING or type(given) is not type(documented) or given != documented):
            shown = "none" if given is MISSING else repr(given)
            problems.append(f"{where}{name}: default {documented!r} in DOCUMENTATION, {shown} in argument_spec")
        if doc.get("choices") != option.get("choices"):
            problems.append(f"{where}{name}: choices {doc.get('choices')} in DOCUMENTATION, {option.get('choices')} in argument_spec")
        if doc.get("elements") != option.get("elements"):
            problems.append(f"{where}{name}: elements {doc.get('elements')} in DOCUMENTATION, {option.get('elements')} in argument_spec")
        if "suboptions" in doc or "options" in option:
            problems += drift(doc.get("suboptions"), option.get("options") or {}, f"{where}{name}.")
    return problems


@pytest.mark.parametrize("relative", MODULES)
def test_each_modules_argument_spec_is_its_documentation(relative: str, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = documentation(relative)
    kwargs = recorded_spec(relative, monkeypatch)
    assert drift(doc.get("options"), kwargs["argument_spec"]) == []
    # relpromote's dry runs (--check) run every role in check mode: Ansible skips a module without it and says only "skipped".
    assert kwargs.get("supports_check_mode") is True, f"{relative} does not support check mode"


def test_every_module_has_a_spec_to_compare() -> None:
    """The parametrised test above covers each host module the roles ship (the release ones by name)."""
    names = {Path(relative).stem for relative in MODULES}
    assert {"release_unpack", "release_switch", "release_finish", "release_live", "release_lock", "release_verify", "release_rollback"} <= names


DOC = yaml.safe_load("""
keep: {description: x, type: int, default: 5}
previous: {description: x, type: str, default: ""}
switched: {description: x, type: bool, default: false}
base_dir: {description: x, type: path, required: true}
mode: {description: x, type: str, choices: [a, b], default: a}
names: {description: x, type: list, elements: str}
target: {description: x, type: dict, suboptions: {database: {description: x, type: str, required: true}}}
""")
SPEC = {"keep": dict(type="int", default=5), "previous": dict(type="str", default=""), "switched": dict(type="bool", default=False),
        "base_dir": dict(type="path", required=True), "mode": dict(type="str", choices=["a", "b"], default="a"),
        "names": dict(type="list", elements="str"), "target": dict(type="dict", options={"database": dict(type="str", required=True)})}


@pytest.mark.parametrize(("name", "changed", "reason"), [
    ("keep", {"default": 6}, "keep: default 5 in DOCUMENTATION, 6 in argument_spec"),
    ("keep", {"default": "5"}, "keep: default 5 in DOCUMENTATION, '5' in argument_spec"),
    ("previous", {"default": None}, "previous: default '' in DOCUMENTATION, None in argument_spec"),
    ("previous", {"default": MISSING}, "previous: default '' in DOCUMENTATION, none in argument_spec"),
    ("switched", {"default": None}, "switched: default False in DOCUMENTATION, None in argument_spec"),
    ("switched", {"default": True}, "switched: default False in DOCUMENTATION, True in argument_spec"),
    ("base_dir", {"default": "/opt"}, "base_dir: default '/opt' in argument_spec, none documented"),
    ("base_dir", {"required": False}, "base_dir: required True in DOCUMENTATION, False in argument_spec"),
    ("base_dir", {"required": None}, "base_dir: required True in DOCUMENTATION, None in argument_spec"),
    ("base_dir", {"type": "str"}, "base_dir: type path in DOCUMENTATION, str in argument_spec"),
    ("base_dir", {"type": None}, "base_dir: argument_spec states no type (documented path)"),
    ("base_dir", {"type": MISSING}, "base_dir: argument_spec states no type (documented path)"),
    ("mode", {"choices": ["a"]}, "mode: choices ['a', 'b'] in DOCUMENTATION, ['a'] in argument_spec"),
    ("names", {"elements": "path"}, "names: elements str in DOCUMENTATION, path in argument_spec"),
])
def test_each_drift_is_named_with_both_sides(name: str, changed: dict[str, Any], reason: str) -> None:
    assert drift(DOC, SPEC) == []
    option = {key: value for key, value in {**SPEC[name], **changed}.items() if value is not MISSING}
    assert drift(DOC, {**SPEC, name: option}) == [reason]


def test_a_misspelt_key_a_missing_option_and_a_suboption_are_named() -> None:
    misspelt = {**SPEC, "previous": {"typeXX": "str", "default": ""}}
    assert drift(DOC, misspelt) == ["previous: argument_spec key typeXX is not one AnsibleModule reads",
                                    "previous: argument_spec states no type (documented str)"]
    assert drift(DOC, {k: v for k, v in SPEC.items() if k != "keep"}) == ["keep: documented, not in argument_spec"]
    assert drift({k: v for k, v in DOC.items() if k != "keep"}, SPEC) == ["keep: in argument_spec, not documented"]
    nested = {**SPEC, "target": dict(type="dict", options={"database": dict(type="str")})}
    assert drift(DOC, nested) == ["target.database: required True in DOCUMENTATION, False in argument_spec"]
