"""Private keys at rest: sealed with AES-256-GCM under a key-encryption key (KEK).

Whoever reads the database (a backup, a superuser, a stolen dump) must not get a signing key
from it. Each sealed value names the KEK it was sealed under, so KEKs rotate: a ring holds the
current KEK, which seals, and older ones, which still open what they sealed until it is
sealed again. The associated data binds a sealed value to its row (e.g. the signing key's
kid), so a ciphertext copied onto another row does not open there.

The ring comes from KEY_ENCRYPTION_KEY (`id:base64url-32-bytes`, comma-separated, current
first) in production, where a KMS or secret store injects it, or from KEY_ENCRYPTION_KEY_FILE;
without either, development keeps one in the state folder, created owner-only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.files import write_private

VERSION = "v1"
DEV_FILE_NAME = "key-encryption-keys.json"
_KEK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value that cannot be opened: unknown KEK, wrong row, or tampered with."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KeyRing:
    """The KEKs a process knows, by id; `current_id` seals, all of them open."""

    current_id: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise ValueError("the current key-encryption key is not in the ring")
        for kek_id, key in self.keys.items():
            if not _KEK_ID.match(kek_id) or len(key) != 32:
                raise ValueError("a key-encryption key needs an id and exactly 32 bytes")

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """`id:base64url[,id:base64url...]`, the current KEK first."""
        keys: dict[str, bytes] = {}
        try:
            for part in (p.strip() for p in spec.split(",") if p.strip()):
                kek_id, encoded = part.split(":", 1)
                keys[kek_id] = _unb64(encoded)
        except ValueError as exc:
            raise ValueError("KEY_ENCRYPTION_KEY must be id:base64url pairs") from exc
        if not keys:
            raise ValueError("KEY_ENCRYPTION_KEY names no key")
        return cls(current_id=next(iter(keys)), keys=keys)

    @classmethod
    def generate(cls) -> KeyRing:
        kek_id = "k" + secrets.token_hex(4)
        return cls(current_id=kek_id, keys={kek_id: AESGCM.generate_key(bit_length=256)})

    def spec(self) -> str:
        ordered = [self.current_id, *(k for k in self.keys if k != self.current_id)]
        return ",".join(f"{k}:{_b64(self.keys[k])}" for k in ordered)

    def seal(self, plaintext: bytes, *, context: str) -> str:
        """`v1.<kek id>.<nonce>.<ciphertext>`, bound to `context` (e.g. the row's id)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        aad = self._aad(self.current_id, context)
        sealed = AESGCM(self.keys[self.current_id]).encrypt(nonce, plaintext, aad)
        return ".".join((VERSION, self.current_id, _b64(nonce), _b64(sealed)))

    def open(self, sealed: str, *, context: str) -> bytes:
        """The plaintext of a `seal` result for the same `context`, or SealError."""
        kek_id = self.kek_id(sealed)
        key = self.keys.get(kek_id)
        if key is None:
            raise SealError(f"sealed under unknown key-encryption key {kek_id!r}")
        _version, _kek, nonce, ciphertext = sealed.split(".")
        try:
            return AESGCM(key).decrypt(
                _unb64(nonce), _unb64(ciphertext), self._aad(kek_id, context)
            )
        except (InvalidTag, ValueError) as exc:
            raise SealError("sealed value does not open: tampered, or another row's") from exc

    def is_current(self, sealed: str) -> bool:
        """False when `sealed` should be sealed again under the current KEK."""
        return self.kek_id(sealed) == self.current_id

    @staticmethod
    def kek_id(sealed: str) -> str:
        parts = sealed.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise SealError("not a sealed value")
        return parts[1]

    @staticmethod
    def _aad(kek_id: str, context: str) -> bytes:
        return f"{VERSION}.{kek_id}.{context}".encode()


class KeyEncryptionSettings(BaseSettings):
    """Where the key-encryption keys come from; see the module's docstring."""

    model_config = SettingsConfigDict(extra="ignore")

    key_encryption_key: SecretStr | None = Field(default=None, alias="KEY_ENCRYPTION_KEY")
    key_encryption_key_file: Path | None = Field(default=None, alias="KEY_ENCRYPTION_KEY_FILE")

    def key_ring(self, state_dir: Path) -> KeyRing:
        """The configured ring; in development, the state folder's own, made on first use."""
        if self.key_encryption_key is not None:
            return KeyRing.parse(self.key_encryption_key.get_secret_value())
        if self.key_encryption_key_file is not None:
            return _read(self.key_encryption_key_file)
        path = state_dir / DEV_FILE_NAME
        if not path.exists():
            _create_once(path, KeyRing.generate())
        return _read(path)


def _create_once(path: Path, ring: KeyRing) -> None:
    """Write `ring` to `path` unless another process got there first; theirs then wins."""
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    write_private(draft, json.dumps({"keys": ring.spec()}))
    try:
        os.link(draft, path)  # fails if the file exists: never replace a ring in use
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def _read(path: Path) -> KeyRing:
    text = path.read_text().strip()
    spec = json.loads(text)["keys"] if text.startswith("{") else text
    return KeyRing.parse(str(spec))
