"""Heavy client libraries (kubernetes_asyncio, asynch), imported on their first use.

A replica whose rules use no Kubernetes or ClickHouse handler never imports them: the
handler modules are imported at start (they register themselves), but they hold these
stand-ins, which import the real module when an attribute is first read (in a handler
call). Type checkers see the real modules (``if TYPE_CHECKING`` in each importer).
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands in for module ``name``; the first attribute read imports it."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
