"""Kubernetes names, as labels may carry them (untrusted): checked before any use.

The handlers take them as params (``handlers/kube.py``: ``Label``, ``Subdomain``), and a
rule's ``resolve:`` checks the pod and namespace it names (``rules/resolving.py``).
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def dns1123_label(value: str) -> str:
    """A namespace or an object name that must be a DNS-1123 label."""
    if len(value) > 63 or not _LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes name (DNS-1123 label: at most 63 lowercase "
            "letters, digits or '-', starting and ending with a letter or digit)"
        )
    return value


def dns1123_subdomain(value: str) -> str:
    """An object name that must be a DNS-1123 subdomain (e.g. a Deployment's or a pod's)."""
    if len(value) > 253 or not _SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes name (DNS-1123 subdomain: at most 253 "
            "lowercase letters, digits, '-' or '.', starting and ending with a letter or digit)"
        )
    return value
