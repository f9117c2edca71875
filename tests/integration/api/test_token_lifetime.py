"""A validly signed token that lives too long is refused by the APIs (issue 15, finding 8).

A leaked signing key, or an issuer misconfigured to mint ten-year tokens, must not give
near-permanent access: the validator caps `exp - iat` at OAUTH_MAX_TOKEN_LIFETIME_SECONDS.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from joserfc import jwt

from tests.tokens import AUDIENCE, ISSUER, TokenMint, bearer

pytestmark = pytest.mark.integration

TEN_YEARS = 10 * 365 * 24 * 3600


def token_living(mint: TokenMint, seconds: int) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "authority-fr",
        "client_id": "authority-fr",
        "scope": "cases:read",
        "jurisdiction": "FR",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + seconds,
    }
    header = {"alg": "ES256", "typ": "at+jwt", "kid": mint.key.kid}
    return jwt.encode(header, claims, mint.key, algorithms=["ES256"], default_type=None)


async def test_a_ten_year_token_is_refused(intake: httpx.AsyncClient, mint: TokenMint) -> None:
    answer = await intake.get("/v1/cases", headers=bearer(token_living(mint, TEN_YEARS)))
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"


async def test_a_token_within_the_maximum_is_accepted(
    intake: httpx.AsyncClient, mint: TokenMint
) -> None:
    answer = await intake.get("/v1/cases", headers=bearer(token_living(mint, 3600)))
    assert answer.status_code == 200, answer.text
