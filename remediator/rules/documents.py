"""YAML documents that remember where each value was written (file name and line).

The one loader for every YAML file the service reads (``rules.yaml``, the admin tokens
file): a key written twice in one mapping is an error naming both lines, where plain
YAML loaders keep the last one silently.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError

_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ConstructorError):
    """A mapping holds one key twice: ``key`` at 1-based ``first_line`` and again at ``line``."""

    def __init__(self, key: Any, first: yaml.Mark, second: yaml.Mark) -> None:
        self.key, self.first_line, self.line = key, first.line + 1, second.line + 1
        super().__init__(
            None,
            None,
            f"the key {key!r} is written twice, at line {self.first_line} and at line {self.line} "
            "(a mapping holds each key once: remove one)",
            second,
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice (a merge key's entries may be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: SafeLoader says so itself below
                continue
            if first is not key_node.start_mark:
                raise DuplicateKeyError(key, first, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


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


def load_document(data: bytes | str, name: str) -> Document:
    """Parse one YAML document; a ``yaml.YAMLError`` names ``name``, not ``<byte string>``.

    A key written twice raises :class:`DuplicateKeyError` (a ``yaml.YAMLError``).
    """
    try:
        loader = _UniqueKeyLoader(data)
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


def load_yaml(data: bytes | str, name: str) -> Any:
    """The data of one YAML document, read as :func:`load_document` reads it."""
    return load_document(data, name).data


def load_all_yaml(data: bytes | str, name: str) -> list[Any]:
    """Every document of a multi-document YAML stream, keys written twice refused."""
    loader = _UniqueKeyLoader(data)
    loader.name = name
    try:
        documents = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            documents.append(loader.get_data())
        return documents
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
