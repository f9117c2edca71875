"""Selector normalisation, keyed hashing and masking.

Cases and responses are matched on selectors (phone numbers, handles, group ids, ...)
without the registry storing or comparing raw values: each selector is normalised so that
equivalent spellings agree, then hashed with a secret key (HMAC-SHA256) so that a leaked
table of hashes cannot be reversed by enumerating, say, every phone number. ``mask`` gives
a partial form that is safe for coordinators' screens and for logs.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import unicodedata
from enum import StrEnum

import phonenumbers

MAX_LENGTH = 256
MIN_KEY_BYTES = 16


class SelectorKind(StrEnum):
    PHONE_NUMBER = "phone_number"
    ACCOUNT_HANDLE = "account_handle"
    GROUP_ID = "group_id"
    USER_ID = "user_id"
    EMAIL = "email"
    IP_ADDRESS = "ip_address"


SELECTOR_KINDS = tuple(SelectorKind)


class InvalidSelector(ValueError):
    """A selector value that cannot be normalised; the message never contains the value."""


def normalise(kind: SelectorKind, value: str) -> str:
    """Return the canonical spelling of a selector so equal selectors hash equally.

    Raises ``InvalidSelector`` (safe to show the caller) for empty, overlong or malformed
    values. The result is a fixed point: normalising it again returns it unchanged.
    """
    if len(value) > MAX_LENGTH:
        raise InvalidSelector(f"{kind.value} is longer than {MAX_LENGTH} characters")
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise InvalidSelector(f"{kind.value} is empty")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise InvalidSelector(f"{kind.value} contains control characters")
    result = _NORMALISERS[kind](text)
    if not result or len(result) > MAX_LENGTH:
        raise InvalidSelector(f"{kind.value} is empty or too long once normalised")
    return result


def selector_hash(key: bytes, kind: SelectorKind, normalised: str) -> str:
    """Keyed hash of a normalised selector, hex encoded, used to match without raw values.

    The kind is part of the MAC input, so a user id and a group id that happen to share a
    spelling never match. Refuses short keys (a weak key makes the hashes enumerable) and
    values that are not normalised (they would silently never match their equivalents).
    """
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"selector hash key must be at least {MIN_KEY_BYTES} bytes")
    if normalise(kind, normalised) != normalised:
        raise InvalidSelector(f"{kind.value} must be normalised before hashing")
    message = kind.value.encode() + b"\x00" + normalised.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def mask(kind: SelectorKind, normalised: str) -> str:
    """Partially hide a normalised selector so people can recognise it without reading it."""
    if kind is SelectorKind.PHONE_NUMBER:
        return _mask_phone(normalised)
    if kind is SelectorKind.ACCOUNT_HANDLE:
        return "@" + _mask_text(normalised)
    if kind is SelectorKind.EMAIL:
        local, _, domain = normalised.partition("@")
        name, dot, tld = domain.rpartition(".")
        shown = f"{_mask_text(name)}{dot}{tld}" if dot else _mask_text(domain)
        return f"{_mask_text(local)}@{shown}"
    if kind is SelectorKind.IP_ADDRESS:
        return _mask_ip(normalised)
    return _mask_text(normalised)


def _normalise_phone(text: str) -> str:
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        raise InvalidSelector("phone_number needs an international prefix (+ or 00)")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InvalidSelector("phone_number is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidSelector("phone_number is not a valid number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _fold(text: str) -> str:
    """Casefold to a fixed point, since casefolding can undo NFKC and vice versa."""
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", text.casefold()).strip()
        if folded == text:
            return text
        text = folded
    raise InvalidSelector("value has no stable case-folded form")


def _normalise_handle(text: str) -> str:
    handle = _fold(text.removeprefix("@").strip())
    if handle.startswith("@"):
        raise InvalidSelector("account_handle has more than one leading @")
    return handle


def _normalise_id(text: str) -> str:
    return _fold(text)


def _normalise_email(text: str) -> str:
    local, at, domain = _fold(text).partition("@")
    if not at or not local or not domain or "@" in domain:
        raise InvalidSelector("email must contain exactly one @ between two non-empty parts")
    return f"{local}@{domain}"


def _normalise_ip(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidSelector("ip_address is not an IPv4 or IPv6 address") from None
    # An IPv4-mapped IPv6 address is the same endpoint as the IPv4 address it carries.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


_NORMALISERS = {
    SelectorKind.PHONE_NUMBER: _normalise_phone,
    SelectorKind.ACCOUNT_HANDLE: _normalise_handle,
    SelectorKind.GROUP_ID: _normalise_id,
    SelectorKind.USER_ID: _normalise_id,
    SelectorKind.EMAIL: _normalise_email,
    SelectorKind.IP_ADDRESS: _normalise_ip,
}


def _mask_text(text: str) -> str:
    """Keep a short prefix and hide the rest behind a fixed run, hiding the length too."""
    keep = 2 if len(text) >= 6 else min(1, len(text) // 3)
    return text[:keep] + "***"


def _mask_phone(normalised: str) -> str:
    try:
        number = phonenumbers.parse(normalised, None)
    except phonenumbers.NumberParseException:
        return _mask_text(normalised)
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    prefix = len(f"+{number.country_code}")
    digits = [i for i, ch in enumerate(shown) if ch.isdigit() and i > prefix]
    hidden = set(digits[1:-2])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(shown))


def _mask_ip(normalised: str) -> str:
    try:
        address = ipaddress.ip_address(normalised)
    except ValueError:
        return _mask_text(normalised)
    if address.version == 4:
        return ".".join([*str(address).split(".")[:2], "*", "*"])
    hextets = address.exploded.split(":")[:2]
    return ":".join(format(int(h, 16), "x") for h in hextets) + ":*"
