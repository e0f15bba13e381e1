"""Reading the YAML a person wrote (relpromote.yml, release manifests): strictly, and within bounds.

PyYAML's safe loader keeps the last of two equal keys without a word, so a second `people:` block at
the end of a config would silently replace the reviewed one; here a duplicate key is refused with
the lines of both. Aliases are shared objects in memory, but whatever walks the data afterwards
(validation, hashing) visits every use: `load` refuses data that expands beyond `max_values`.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from relpromote.errors import BadInput

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node)
                if key in first_line:
                    raise DuplicateKey(
                        None, None, f"duplicate key {key!r} (first on line {first_line[key] + 1})", key_node.start_mark
                    )
                first_line[key] = key_node.start_mark.line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def load(text: str, source: str, *, max_values: int = 1_000_000) -> Any:
    """Parse YAML text; any problem is a `BadInput` naming `source` and the line."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a safe loader that refuses duplicate keys
    except DuplicateKey as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise BadInput(f"{source}: {where}{exc.problem}; keep one and merge what the other says") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{source}: {describe(exc)}") from None
    except RecursionError:
        raise BadInput(f"{source}: nested too deeply to read; flatten the structure") from None
    if _too_many_values(data, max_values):
        raise BadInput(f"{source}: expands to more than {max_values:,} values (through aliases or sheer size); write it out plainly and smaller")
    return data


def describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}malformed YAML ({problem}); fix the indentation or quote the value"


def _too_many_values(data: Any, budget: int) -> bool:
    """Count values as a walk over the data would visit them (an alias counts each time it is used)."""
    stack = [data]
    seen = 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen + len(stack) > budget:
            return True
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False
