"""A rule's probe: compiled with its rule, rendered for one alert, described for plans. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remediator.durations import format_duration
from remediator.errors import TemplateError
from remediator.handling.escapes import checked_url, url_escape
from remediator.rules.patterns import Pattern, compile_pattern
from remediator.rules.schema import ProbeSpec
from remediator.rules.templates import compile_value, render_value


@dataclass(frozen=True)
class Probe:
    """A probe rendered for one alert: the URL to ask and what its answer must be."""

    url: str
    method: str
    expect_status: tuple[int, ...]
    expect_body: Pattern | None
    reject_body: Pattern | None
    timeout: float
    interval: float

    def status_passes(self, status: int) -> bool:
        return status in self.expect_status if self.expect_status else 200 <= status < 300

    def body_passes(self, body: str) -> str | None:
        """None when the body passes ``expect_body`` and ``reject_body``; else why not."""
        if self.expect_body is not None and not self.expect_body.search(body):
            return f"the body does not match /{self.expect_body.pattern}/"
        if self.reject_body is not None and self.reject_body.search(body):
            return f"the body contains /{self.reject_body.pattern}/"
        return None

    def describe(self) -> str:
        """``GET https://x/y; expect 2xx and a body matching /rows/``."""
        expect = ", ".join(map(str, self.expect_status)) or "2xx"
        body = f" and a body matching /{self.expect_body.pattern}/" if self.expect_body else ""
        if self.reject_body is not None:
            body += f" and a body without /{self.reject_body.pattern}/"
        return f"{self.method} {self.url}; expect {expect}{body}"

    def plan(self, verify_timeout: float) -> list[str]:
        """The probe's part of a plan (``simulate``, a dry run's plan)."""
        within = format_duration(verify_timeout) if verify_timeout else "0s (one try)"
        return [
            f"probe {self.describe()} first: if it passes, nothing to do (noop)",
            f"after acting, probe every {format_duration(self.interval)} until it passes, within {within}",
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "method": self.method,
            "expect_status": list(self.expect_status),
            "expect_body": self.expect_body.pattern if self.expect_body else None,
            "reject_body": self.reject_body.pattern if self.reject_body else None,
            "timeout": self.timeout,
            "interval": self.interval,
        }


@dataclass(frozen=True)
class ProbeTemplate:
    """A rule's ``probe:`` with its URL template compiled (substituted values percent-encoded)."""

    spec: ProbeSpec
    url: Any  # a jinja2 Template, or the URL itself when it has no template

    @classmethod
    def compile(cls, spec: ProbeSpec) -> ProbeTemplate:
        """Raises TemplateError on a template syntax error, ValueError on a bad fixed URL."""
        url = compile_value(spec.url, url_escape)
        if isinstance(url, str):
            checked_url(url)
        return cls(spec=spec, url=url)

    def render(self, context: Mapping[str, Any]) -> Probe:
        """The probe for one alert; raises TemplateError saying why the URL is refused."""
        url = str(render_value(self.url, context)).strip()
        try:
            checked_url(url)
        except ValueError as exc:
            raise TemplateError(f"probe.url: {exc}") from exc
        spec = self.spec
        return Probe(
            url=url,
            method=spec.method,
            expect_status=spec.expect_status,
            expect_body=_compiled(spec.expect_body),
            reject_body=_compiled(spec.reject_body),
            timeout=spec.timeout,
            interval=spec.interval,
        )


def _compiled(pattern: str | None) -> Pattern | None:
    return None if pattern is None else compile_pattern(pattern)  # checked when the rules loaded
