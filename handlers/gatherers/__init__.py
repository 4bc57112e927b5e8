"""The built-in gatherers of a rule's ``context:`` entries; each registers itself.

- ``kubernetes.logs``: the last lines of a pod's log (``kubernetes.py``);
- ``kubernetes.events``: the recent Events of one object (``kubernetes.py``);
- ``prometheus.query``: an instant query's value, with its labels (``prometheus.py``).
"""

from handlers.gatherers import kubernetes, prometheus

__all__ = ["kubernetes", "prometheus"]
