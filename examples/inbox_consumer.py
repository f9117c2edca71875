"""Example integrator: read your caseshare inbox from Kafka, decrypt, acknowledge.

Copy this file to start your member state's integration. It depends only on aiokafka, httpx
and joserfc (`pip install aiokafka httpx joserfc`), not on caseshare itself, and it shows the
four rules every inbox reader must follow:

1. Read `caseshare.inbox.<CC>.v1` with your own consumer group and manual commits.
2. Treat every record as a CloudEvent in binary mode: the metadata is in `ce_*` headers and
   the body is JSON. Refuse records whose headers are missing or wrong.
3. Delivery is at least once: the hub re-publishes anything you have not acknowledged, under
   the same `ce_id`. Remember the ids you have processed (here: a small SQLite file) and skip
   repeats, so you process each delivery exactly once by id.
4. Commit the Kafka offset only after the delivery is safely handled *and* acknowledged over
   REST (`POST /v1/inbox/{delivery_id}/ack`): a crash in between means the record is read
   again, which rule 3 makes harmless.

The disclosures inside a delivery are a compact JWE (ECDH-ES+A256KW, A256GCM) sealed for your
jurisdiction's key alone; this program opens them with your private JWK. A JWE proves nothing
about its sender (anyone with your public key can make one), so inside it is a JWS (ES256) by
the hub, checked against the hub's published keys (`/.well-known/evidence-jwks.json` on
intake, or --hub-jwks FILE). When the platform signed its disclosures, the hub's payload also
holds the platform's JWS and key, checked too. A delivery failing either check is rejected:
not handed on, not acknowledged.

Run it against `make run` (see examples/README.md):

    python examples/inbox_consumer.py --jurisdiction FR --dev-clients .state/dev-clients.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.helpers import create_ssl_context
from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

DELIVERED = "eu.caseshare.response.delivered.v1"
LINK_FOUND = "eu.caseshare.case.link-found.v2"
REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time")
# The only algorithms a sealed delivery may use; anything else is refused before decryption.
SEALING = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "A256GCM"])
SEALING.max_ciphertext_length = 12 * 1024 * 1024  # large traffic-data disclosures
HUB_TYP = "caseshare-delivery+jws"
PLATFORM_TYP = "caseshare-disclosures+jws"


class BadRecord(Exception):
    """A record that is not a valid caseshare CloudEvent: skip it (a real system dead-letters)."""


@dataclass(frozen=True)
class Config:
    jurisdiction: str
    bootstrap: str
    intake_url: str
    issuer: str
    client_id: str
    client_secret: str
    key: ECKey | OKPKey
    group: str
    seen_db: Path
    max_messages: int | None
    timeout: float | None
    hub_jwks: Path | None = None
    # Mutual TLS to the cluster: the certificate names your member principal (User:member-CC).
    kafka_ca: Path | None = None
    kafka_cert: Path | None = None
    kafka_key: Path | None = None

    def kafka_security(self) -> dict[str, Any]:
        """aiokafka's TLS options when a CA or client certificate is given, else PLAINTEXT."""
        if not (self.kafka_ca or self.kafka_cert):
            return {}
        context = create_ssl_context(
            cafile=self.kafka_ca, certfile=self.kafka_cert, keyfile=self.kafka_key
        )
        return {"security_protocol": "SSL", "ssl_context": context}


class SeenIds:
    """The ce_ids already processed, in SQLite so the memory survives restarts."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS seen (ce_id TEXT PRIMARY KEY, ce_type TEXT, at REAL)"
        )

    def __contains__(self, ce_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM seen WHERE ce_id = ?", (ce_id,)).fetchone()
        return row is not None

    def add(self, ce_id: str, ce_type: str) -> None:
        with self.db:  # one committed transaction per id
            self.db.execute(
                "INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (ce_id, ce_type, time.time())
            )


class Tokens:
    """OAuth 2.0 client credentials (client_secret_basic), renewed shortly before expiry."""

    def __init__(self, cfg: Config, http: httpx.AsyncClient) -> None:
        self.cfg, self.http = cfg, http
        self.token, self.expires = "", 0.0

    async def get(self) -> str:
        if time.monotonic() > self.expires - 30:
            answer = await self.http.post(
                f"{self.cfg.issuer}/token",
                data={"grant_type": "client_credentials", "scope": "inbox:read"},
                auth=(self.cfg.client_id, self.cfg.client_secret),
            )
            answer.raise_for_status()
            body = answer.json()
            self.token = body["access_token"]
            self.expires = time.monotonic() + float(body.get("expires_in", 60))
        return self.token


def cloud_event(record: ConsumerRecord[bytes, bytes]) -> tuple[dict[str, str], dict[str, Any]]:
    """The CloudEvents headers and JSON body of a record, or BadRecord."""
    headers = {key: value.decode() for key, value in record.headers or () if value is not None}
    missing = [name for name in REQUIRED_HEADERS if not headers.get(name)]
    if missing:
        raise BadRecord(f"missing CloudEvents headers: {', '.join(missing)}")
    if headers["ce_specversion"] != "1.0":
        raise BadRecord(f"unsupported CloudEvents version {headers['ce_specversion']}")
    if headers.get("content-type", "application/json") != "application/json":
        raise BadRecord(f"unexpected content type {headers['content-type']}")
    try:
        body = json.loads(record.value or b"")
    except ValueError:
        raise BadRecord("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRecord("body is not a JSON object")
    return headers, body


class Forged(BadRecord):
    """A delivery whose hub or platform signature does not verify: rejected, not acknowledged."""


def _segment(segment: str) -> bytes:
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
        raise Forged("non-canonical base64url in a signature")
    return raw


def verify_jws(token: str, keys: dict[str, ECKey], typ: str) -> dict[str, Any]:
    """The claims of an ES256 JWS of type `typ` signed by one of `keys` (by kid), or Forged."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise Forged("not a compact JWS")
    for part in parts:
        _segment(part)
    header = json.loads(_segment(parts[0]))
    if set(header) - {"alg", "kid", "typ"} or header.get("alg") != "ES256":
        raise Forged("unexpected JWS header")
    if header.get("typ") != typ:
        raise Forged(f"expected a {typ}")
    key = keys.get(header.get("kid"))
    if key is None:
        raise Forged("signed by a key that is not published")
    try:
        claims = json.loads(jws.deserialize_compact(token, key, algorithms=["ES256"]).payload)
    except (JoseError, ValueError) as exc:
        raise Forged(f"signature does not verify ({type(exc).__name__})") from None
    if not isinstance(claims, dict):
        raise Forged("signed content is not a JSON object")
    return claims


def public_keys(jwks: dict[str, Any]) -> dict[str, ECKey]:
    """EC P-256 public keys of a JWKS, by kid."""
    return {
        k["kid"]: ECKey.import_key({m: k[m] for m in ("kty", "crv", "x", "y")})
        for k in jwks.get("keys", [])
        if k.get("kty") == "EC" and k.get("crv") == "P-256" and "d" not in k
    }


def open_sealed(
    token: str, key: ECKey | OKPKey, hub_keys: dict[str, ECKey], delivery_id: str
) -> Any:
    """Decrypt a delivery with our private key, check the hub's signature (and the platform's,
    when it signed) and return the disclosures; a forged or tampered delivery is Forged."""
    # The kid in the JWE header is the RFC 7638 thumbprint of the recipient's public key.
    header = json.loads(_segment(token.split(".", 1)[0]))
    if header.get("kid") != key.thumbprint():
        raise ValueError("sealed for a different key: is this the right key file?")
    if header.get("cty") != "JWT":
        raise Forged("delivery is not signed by the hub")
    try:
        inner = jwe.decrypt_compact(token, key, registry=SEALING).plaintext
    except (JoseError, ValueError) as exc:
        raise Forged(f"cannot decrypt ({type(exc).__name__})") from None
    claims = verify_jws((inner or b"").decode("ascii", "replace"), hub_keys, HUB_TYP)
    if claims.get("delivery_id") != delivery_id:
        raise Forged("the hub signed this payload for another delivery")
    if claims.get("platform_signature") is not None:
        jwk = claims.get("platform_jwk") or {}
        said = verify_jws(claims["platform_signature"], public_keys({"keys": [jwk]}), PLATFORM_TYP)
        if said.get("disclosures") != claims.get("disclosures"):
            raise Forged("the platform did not sign these disclosures")
    return claims.get("disclosures")


async def hub_keys(http: httpx.AsyncClient, cfg: Config) -> dict[str, ECKey]:
    """The hub's published signing keys: from --hub-jwks, or intake's well-known document."""
    if cfg.hub_jwks is not None:
        return public_keys(json.loads(cfg.hub_jwks.read_text()))
    answer = await http.get(f"{cfg.intake_url}/.well-known/evidence-jwks.json")
    answer.raise_for_status()
    return public_keys(answer.json())


async def acknowledge(http: httpx.AsyncClient, cfg: Config, tokens: Tokens, delivery: str) -> str:
    """Proof of retrieval; acknowledging twice returns the first time, so retries are safe."""
    answer = await http.post(
        f"{cfg.intake_url}/v1/inbox/{delivery}/ack",
        headers={"Authorization": f"Bearer {await tokens.get()}"},
    )
    answer.raise_for_status()
    acknowledged_at: str = answer.json()["acknowledged_at"]
    return acknowledged_at


async def handle(
    record: ConsumerRecord[bytes, bytes],
    cfg: Config,
    http: httpx.AsyncClient,
    tokens: Tokens,
    keys: dict[str, ECKey],
) -> str:
    """Process one new record and say what happened; raises on anything that must stop us."""
    headers, body = cloud_event(record)
    ce_id, ce_type = headers["ce_id"], headers["ce_type"]
    if ce_type == LINK_FOUND:
        # Hit/no-hit only: another jurisdiction has a case sharing a selector with ours.
        # References are exchanged only once both sides consent (POST /v1/links/{id}/consent).
        return f"link {body['link_id']}: a case of {body['other_jurisdiction']} matches one of ours"
    if ce_type != DELIVERED:
        return f"ignored {ce_type}"
    if body.get("delivery_id") != ce_id or body.get("jurisdiction") != cfg.jurisdiction:
        raise BadRecord("delivery does not match its ce_id or is not addressed to us")
    sealed = body.get("sealed_disclosures")
    disclosures = open_sealed(sealed, cfg.key, keys, ce_id) if sealed else []
    # Hand `disclosures` to your case-management system here, before acknowledging. This
    # example prints only what kinds of records arrived, never their values.
    kinds = Counter(r["type"] for d in disclosures for r in d.get("records", []))
    acknowledged_at = await acknowledge(http, cfg, tokens, ce_id)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no records"
    return (
        f"delivery {ce_id} for case {body['case_reference']}: {summary}; "
        f"acknowledged {ce_id} at {acknowledged_at}"
    )


async def consume(cfg: Config) -> int:
    """Read until --max-messages records were processed or nothing came for --timeout s."""
    seen = SeenIds(cfg.seen_db)
    consumer = AIOKafkaConsumer(
        f"caseshare.inbox.{cfg.jurisdiction}.v1",
        bootstrap_servers=cfg.bootstrap,
        **cfg.kafka_security(),
        group_id=cfg.group,
        enable_auto_commit=False,  # we commit ourselves, after the acknowledgement
        auto_offset_reset="earliest",  # a new group starts at the oldest delivery
        fetch_max_wait_ms=50,
    )
    processed = 0
    await consumer.start()
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            tokens = Tokens(cfg, http)
            keys = await hub_keys(http, cfg)
            quiet_since = time.monotonic()
            while cfg.max_messages is None or processed < cfg.max_messages:
                batch = await consumer.getmany(timeout_ms=500, max_records=1)
                if not batch:
                    if cfg.timeout is not None and time.monotonic() - quiet_since > cfg.timeout:
                        break
                    continue
                quiet_since = time.monotonic()
                for tp, records in batch.items():
                    for record in records:
                        processed += await process(
                            record, tp, cfg, seen, http, tokens, consumer, keys
                        )
    finally:
        await consumer.stop()
    return processed


async def process(
    record: ConsumerRecord[bytes, bytes],
    tp: TopicPartition,
    cfg: Config,
    seen: SeenIds,
    http: httpx.AsyncClient,
    tokens: Tokens,
    consumer: AIOKafkaConsumer,
    keys: dict[str, ECKey],
) -> int:
    """Handle one record exactly once by ce_id, then commit its offset; returns 1 if new."""
    ce_id = dict(record.headers or ()).get("ce_id", b"").decode()
    new = ce_id not in seen
    if new:
        try:
            print(await handle(record, cfg, http, tokens, keys), flush=True)
        except Forged as exc:
            # Not remembered as seen: a forgery must not shadow the real delivery's ce_id.
            print(f"rejected delivery {ce_id}: {exc}", flush=True)
            await consumer.commit({tp: record.offset + 1})
            return 0
        except BadRecord as exc:
            print(f"skipped record {tp.partition}/{record.offset}: {exc}", flush=True)
        seen.add(ce_id, dict(record.headers or ()).get("ce_type", b"").decode())
    else:
        print(f"duplicate {ce_id}: already processed", flush=True)
    await consumer.commit({tp: record.offset + 1})
    return int(new)


def parse_args(argv: list[str]) -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jurisdiction", required=True, help="your ISO code, e.g. FR")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--intake-url", default="http://127.0.0.1:8000")
    p.add_argument("--issuer", default="http://127.0.0.1:8003")
    p.add_argument("--client-id", help="default: authority-<cc>")
    p.add_argument("--client-secret", default=os.environ.get("CASESHARE_CLIENT_SECRET"))
    p.add_argument("--dev-clients", type=Path, help="read the secret from make run's file")
    p.add_argument("--key-file", type=Path, help="default: .state/keys/<CC>.private.jwk.json")
    p.add_argument("--group", help="consumer group (default: <cc>-inbox-example)")
    p.add_argument("--seen-db", type=Path, help="default: ./inbox-<CC>-seen.sqlite")
    p.add_argument("--max-messages", type=int, help="stop after this many new records")
    p.add_argument("--timeout", type=float, help="stop after this many idle seconds")
    p.add_argument("--hub-jwks", type=Path, help="the hub's signing keys (default: from intake)")
    env = os.environ.get
    p.add_argument("--kafka-ca", type=Path, default=env("KAFKA_SSL_CAFILE"), help="TLS CA file")
    p.add_argument("--kafka-cert", type=Path, default=env("KAFKA_SSL_CERTFILE"))
    p.add_argument("--kafka-key", type=Path, default=env("KAFKA_SSL_KEYFILE"))
    a = p.parse_args(argv)
    cc = a.jurisdiction.upper()
    client_id = a.client_id or f"authority-{cc.lower()}"
    secret = a.client_secret
    if secret is None and a.dev_clients is not None:
        secret = json.loads(a.dev_clients.read_text())[client_id]
    if secret is None:
        p.error("give --client-secret, CASESHARE_CLIENT_SECRET or --dev-clients")
    key_file = a.key_file or Path(".state/keys") / f"{cc}.private.jwk.json"
    jwk = json.loads(key_file.read_text())
    key = ECKey.import_key(jwk) if jwk.get("kty") == "EC" else OKPKey.import_key(jwk)
    return Config(
        jurisdiction=cc,
        bootstrap=a.bootstrap,
        intake_url=a.intake_url.rstrip("/"),
        issuer=a.issuer.rstrip("/"),
        client_id=client_id,
        client_secret=secret,
        key=key,
        group=a.group or f"{cc.lower()}-inbox-example",
        seen_db=a.seen_db or Path(f"inbox-{cc}-seen.sqlite"),
        max_messages=a.max_messages,
        timeout=a.timeout,
        hub_jwks=a.hub_jwks,
        kafka_ca=a.kafka_ca,
        kafka_cert=a.kafka_cert,
        kafka_key=a.kafka_key,
    )


def main() -> int:
    cfg = parse_args(sys.argv[1:])
    try:
        count = asyncio.run(consume(cfg))
    except (JoseError, ValueError) as exc:
        print(f"cannot open a delivery: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"acknowledgement failed, offset not committed: {exc}", file=sys.stderr)
        return 1
    print(f"processed {count} new record(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
