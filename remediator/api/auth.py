"""Who is calling: ``Authorization`` against configured secrets, in constant time.

The webhook checks its bearer token or basic auth with ``authorized``; the admin API
identifies a named credential with ``Credentials.identify``. Works on bytes, so a
header with any characters (aiohttp keeps undecodable bytes as surrogates) is a plain
"no", never an exception. An empty or blank secret never matches, nor does an empty
presented credential: an empty token can never open a route.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import SecretStr

from remediator.rules.documents import Document, DuplicateKeyError, load_document
from remediator.settings import MIN_SECRET_LENGTH, Settings, SettingsError


def authorized(
    header: str,
    *,
    token: SecretStr | None = None,
    username: str | None = None,
    password: SecretStr | None = None,
) -> bool:
    """Whether ``header`` carries ``Bearer <token>`` or ``Basic <username:password>``."""
    scheme, _, value = header.strip().partition(" ")
    presented = value.strip().encode("utf-8", "surrogateescape")
    if not presented:
        return False
    if scheme.lower() == "bearer":
        return _same(presented, token)
    if scheme.lower() == "basic" and username is not None:
        try:
            decoded = base64.b64decode(presented, validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, secret = decoded.partition(b":")
        ok_user = hmac.compare_digest(user, username.encode("utf-8", "surrogateescape"))
        ok_secret = _same(secret, password)
        return bool(colon) and ok_user and ok_secret
    return False


def has_credential(header: str) -> bool:
    """Whether ``header`` carries a credential at all (a request without one is no guess)."""
    return bool(header.strip().partition(" ")[2].strip())


def basic_user(header: str) -> str | None:
    """The user name of ``Basic <base64 user:password>`` (None: not basic auth, or unreadable)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip().encode("utf-8", "surrogateescape"), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, _ = decoded.partition(b":")
    return user.decode("utf-8", "surrogateescape") if colon else None


def _same(presented: bytes, configured: SecretStr | None) -> bool:
    """Constant-time equality; an unset, empty or blank secret and an empty input never match."""
    if configured is None:
        return False
    expected = configured.get_secret_value().encode("utf-8", "surrogateescape")
    equal = hmac.compare_digest(presented, expected)
    return equal and bool(presented) and bool(expected.strip())


# ---- named admin credentials ---------------------------------------------------
#
# ``REMEDIATOR_ADMIN_TOKENS_FILE`` names a YAML file of ``name: token`` entries; a value
# may also be ``{token: ..., access: read}`` for a read-only credential. A token is either
# the secret itself (at least 16 characters) or its SHA-256 as ``sha256:<64 hex digits>``,
# so the file need not hold a usable secret. ``REMEDIATOR_ADMIN_TOKEN`` keeps working as
# the credential named ``admin`` with full access.
#
# Only SHA-256 digests are kept in memory. A presented token is hashed and compared with
# every digest in constant time, so neither the match nor its position leaks through timing.

Access = Literal["admin", "read"]
LEGACY_NAME = "admin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HASHED = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_VARIABLE = "REMEDIATOR_ADMIN_TOKENS_FILE"


@dataclass(frozen=True)
class Credential:
    """One admin credential: the name the audit shows, and its access."""

    name: str
    access: Access
    digest: bytes  # SHA-256 of the token; the token itself is never kept

    @property
    def can_act(self) -> bool:
        return self.access == "admin"


@dataclass(frozen=True)
class Credentials:
    """Every admin credential of this service; empty means the admin API is off."""

    entries: tuple[Credential, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def identify(self, header: str) -> Credential | None:
        """The credential whose token ``Authorization: Bearer <token>`` carries, if any."""
        scheme, _, value = header.strip().partition(" ")
        presented = value.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() != "bearer" or not presented:
            return None
        digest = hashlib.sha256(presented).digest()
        found: Credential | None = None
        for entry in self.entries:  # no early exit: every entry is compared
            if hmac.compare_digest(digest, entry.digest) and found is None:
                found = entry
        return found


def load_credentials(settings: Settings) -> Credentials:
    """The admin credentials from the settings; ``SettingsError`` lists every problem."""
    entries: list[Credential] = []
    if settings.admin_token is not None:
        token = settings.admin_token.get_secret_value().strip().encode("utf-8", "surrogateescape")
        entries.append(Credential(LEGACY_NAME, "admin", hashlib.sha256(token).digest()))
    if settings.admin_tokens_file is not None:
        entries += _read_file(settings.admin_tokens_file, taken={e.name for e in entries})
    return Credentials(tuple(entries))


def _read_file(path: Path, taken: set[str]) -> list[Credential]:
    where = f"{_VARIABLE} {path}"
    try:
        doc = load_document(path.read_bytes(), str(path))
    except OSError as exc:
        raise SettingsError([f"{where}: cannot read: {exc.strerror or exc}"]) from None
    except DuplicateKeyError as exc:  # the key is not named: it may be a token written as a name
        problem = f"{where}: a name is written twice, at lines {exc.first_line} and {exc.line}"
        raise SettingsError([problem]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise SettingsError([f"{where}: not valid YAML{line}"]) from None  # no excerpt: it may hold a token
    document = doc.data
    if not isinstance(document, dict) or not document:
        raise SettingsError([f"{where}: expected a mapping of name: token entries"])
    entries, problems, digests = [], [], set()
    for index, (name, value) in enumerate(document.items()):
        try:
            entry = _entry(name, value, taken)
        except ValueError as exc:
            problems.append(f"{where}: {_shown(name, index, doc)}: {exc}")
            continue
        if entry.digest in digests:
            problems.append(f"{where}: {_shown(name, index, doc)}: the same token as another entry")
            continue
        taken.add(entry.name)
        digests.add(entry.digest)
        entries.append(entry)
    if problems:
        raise SettingsError(problems)
    return entries


def _shown(name: Any, index: int, doc: Document) -> str:
    """How an error names an entry: ``entry 'carol'``; by its line alone when the name is as
    long as a token may be (it may be one, pasted where the name goes)."""
    if isinstance(name, str) and len(name) < MIN_SECRET_LENGTH:
        return f"entry {name!r}"
    line = doc.line((name,)) if isinstance(name, str) else None
    where = f"line {line}" if line is not None else f"position {index + 1}"
    return f"the entry at {where} (its name is not shown: a name this long may be a token)"


def _entry(name: Any, value: Any, taken: set[str]) -> Credential:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("a name is letters, digits and . _ @ - (max 64), starting with a letter or digit")
    if name in taken:
        reason = "is REMEDIATOR_ADMIN_TOKEN's name" if name == LEGACY_NAME else "appears twice"
        raise ValueError(f"the name {reason}")
    access: Any = "admin"
    if isinstance(value, dict):
        unknown = sorted(str(k) for k in value if k not in ("token", "access"))
        if unknown:
            raise ValueError(f"unknown keys {', '.join(unknown)} (known: token, access)")
        access = value.get("access", "admin")
        value = value.get("token")
    if access not in ("admin", "read"):
        raise ValueError("access must be 'admin' or 'read'")
    return Credential(name, access, _digest(value))


def _digest(token: Any) -> bytes:
    if not isinstance(token, str) or not token.strip():
        raise ValueError("the token is missing or not a string")
    token = token.strip()
    hashed = _HASHED.match(token)
    if hashed:
        return bytes.fromhex(hashed.group(1))
    if token.lower().startswith("sha256:"):
        raise ValueError("a hashed token is sha256: followed by 64 hex digits")
    if len(token) < MIN_SECRET_LENGTH:
        raise ValueError(f"a token must be at least {MIN_SECRET_LENGTH} characters long")
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
