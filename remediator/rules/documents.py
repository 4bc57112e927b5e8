"""YAML documents that remember where each value was written (file name and line)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Document:
    """The parsed data and the node tree it came from, for line numbers."""

    data: Any
    node: yaml.Node | None

    def line(self, path: Sequence[str | int]) -> int | None:
        """1-based line of the value at ``path`` (its key, for a mapping entry).

        Walks as deep as the path exists: a missing key gives the line of the
        mapping that lacks it.
        """
        node, line = self.node, None
        if node is not None:
            line = node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                entry = next(((k, v) for k, v in node.value if k.value == part), None)
                if entry is None:
                    break
                line, node = entry[0].start_mark.line + 1, entry[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line


def load_document(data: bytes, name: str) -> Document:
    """Parse one YAML document; a ``yaml.YAMLError`` names ``name``, not ``<byte string>``."""
    try:
        loader = yaml.SafeLoader(data)
    except yaml.YAMLError as exc:  # undecodable bytes
        raise _renamed(exc, name) from None
    loader.name = name
    try:
        node = loader.get_single_node()
        return Document(None if node is None else loader.construct_document(node), node)
    except yaml.YAMLError as exc:
        raise _renamed(exc, name) from None
    finally:
        loader.dispose()


def _renamed(exc: yaml.YAMLError, name: str) -> yaml.YAMLError:
    for attr in ("context_mark", "problem_mark"):
        mark = getattr(exc, attr, None)
        if mark is not None:
            mark.name = name
    if isinstance(exc, yaml.reader.ReaderError):
        exc.name = name
    return exc
