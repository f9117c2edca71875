"""Sealing private keys under a key-encryption key ring: AES-256-GCM, bound to a context."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from shared.keywrap import DEV_FILE_NAME, KeyEncryptionSettings, KeyRing, SealError


def test_sealed_values_open_with_their_context_only() -> None:
    ring = KeyRing.generate()
    sealed = ring.seal(b'{"d": "secret-scalar"}', context="kid-1")
    assert "secret-scalar" not in sealed
    assert sealed.startswith(f"v1.{ring.current_id}.")
    assert ring.open(sealed, context="kid-1") == b'{"d": "secret-scalar"}'
    with pytest.raises(SealError):
        ring.open(sealed, context="kid-2")  # copied onto another row


def test_a_tampered_value_or_an_unknown_kek_does_not_open() -> None:
    ring = KeyRing.generate()
    sealed = ring.seal(b"x", context="k")
    version, kek, nonce, body = sealed.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(SealError):
        ring.open(".".join((version, kek, nonce, flipped)), context="k")
    with pytest.raises(SealError, match="unknown"):
        KeyRing.generate().open(sealed, context="k")
    with pytest.raises(SealError):
        ring.open("not sealed", context="k")


def test_a_rotated_ring_opens_old_values_and_seals_under_the_new_kek() -> None:
    old = KeyRing.generate()
    sealed = old.seal(b"x", context="k")
    new = KeyRing.generate()
    rotated = KeyRing.parse(f"{new.spec()},{old.spec()}")
    assert rotated.current_id == new.current_id
    assert rotated.open(sealed, context="k") == b"x"
    assert not rotated.is_current(sealed)
    assert rotated.is_current(rotated.seal(b"x", context="k"))


@pytest.mark.parametrize("spec", ["", "k1", "k1:c2hvcnQ", "bad id:" + "A" * 43, "k:!!"])
def test_malformed_rings_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        KeyRing.parse(spec)


def test_the_ring_never_shows_its_keys() -> None:
    ring = KeyRing.generate()
    assert ring.spec().split(":", 1)[1] not in repr(ring)


def test_development_keeps_one_owner_only_ring_in_the_state_folder(tmp_path: Path) -> None:
    settings = KeyEncryptionSettings.model_validate({"KEY_ENCRYPTION_KEY": None})
    first = settings.key_ring(tmp_path)
    second = settings.key_ring(tmp_path)
    assert first == second
    path = tmp_path / DEV_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.parse(json.loads(path.read_text())["keys"]) == first
    assert [p.name for p in tmp_path.iterdir()] == [DEV_FILE_NAME]


def test_a_configured_key_wins_over_the_state_folder(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    settings = KeyEncryptionSettings.model_validate({"KEY_ENCRYPTION_KEY": ring.spec()})
    assert settings.key_ring(tmp_path) == ring
    assert not (tmp_path / DEV_FILE_NAME).exists()
    from_file = tmp_path / "kek"
    from_file.write_text(ring.spec())
    settings = KeyEncryptionSettings.model_validate(
        {"KEY_ENCRYPTION_KEY": None, "KEY_ENCRYPTION_KEY_FILE": str(from_file)}
    )
    assert settings.key_ring(tmp_path) == ring
