"""An independent workload client (issue 17): a local test issuer (an ES256 key made here, with
GitHub Actions' documented claim set) and Python requests-oauth2client performing the RFC 8693
token exchange and the RFC 7523 JWT-bearer grant against a running Portcullis over HTTP. Each
issued token is validated with authlib's JOSE against the published JWKS (signature, iss, aud,
exp). The tenant's setup goes through the admin API over HTTP; the issuer's keys are uploaded
(no fetch back to this process).

Usage: oauth2client_workload.py SERVER_URL ADMIN_TOKEN TENANT
Prints one JSON line: what the Rust test judges. Exits non-zero with the reason on any failure.
Nothing here is Portcullis code: only standard endpoints, the admin API and the two libraries.
"""
import json
import sys
import time
import uuid

import requests
from authlib.jose import JsonWebKey, jwt
from requests_oauth2client import OAuth2Client
from requests_oauth2client.exceptions import InvalidGrant

server, admin_token, tenant = sys.argv[1:4]
ISSUER = "https://ghes.ci.example/_services/token"
AUDIENCE = "https://portcullis.ci.example"


def fail(why):
    sys.exit(f"workload client: {why}")


def admin(path, body):
    r = requests.post(
        f"{server}/admin/v1/tenants/{tenant}{path}",
        json=body,
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    if r.status_code != 201:
        fail(f"admin {path}: {r.status_code} {r.text}")
    return r.json()


key = JsonWebKey.generate_key("EC", "P-256", is_private=True)
key_dict = key.as_dict(is_private=False)
key_dict["kid"] = key.thumbprint()
key_dict["use"] = "sig"
key_dict["alg"] = "ES256"

admin("/resource-servers", {"audience": "deploy-api", "scopes": ["deploy", "read"]})
admin(
    "/federation/issuers",
    {
        "preset": "github_actions",
        "issuer": ISSUER,
        "key_source": {"kind": "jwks", "keys": {"keys": [key_dict]}},
        "algorithms": ["ES256"],
    },
)
rule = admin(
    "/federation/rules",
    {
        "id": "deploy-main",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "conditions": [
            {"claim": "repository_owner_id", "equals": "1001"},
            {"claim": "repository_id", "equals": "2002"},
            {"claim": "ref", "equals": "refs/heads/main"},
            {"claim": "event_name", "equals": "push"},
        ],
        "audiences": ["deploy-api"],
        "scopes": ["deploy"],
        "max_lifetime_secs": 300,
    },
)


def github_push_main():
    """GitHub Actions' claims for a push to main (docs.github.com, "About security hardening
    with OpenID Connect"), fresh jti."""
    now = int(time.time())
    return {
        "iss": ISSUER, "aud": AUDIENCE, "jti": str(uuid.uuid4()),
        "sub": "repo:acme/deploy:ref:refs/heads/main",
        "iat": now - 5, "nbf": now - 5, "exp": now + 300,
        "ref": "refs/heads/main", "ref_type": "branch", "ref_protected": "true",
        "sha": "d3adb33f", "repository": "acme/deploy", "repository_id": "2002",
        "repository_owner": "acme", "repository_owner_id": "1001",
        "repository_visibility": "private", "actor": "octocat", "actor_id": "42",
        "event_name": "push", "workflow": "deploy", "run_id": "7", "run_number": "3",
        "run_attempt": "1", "runner_environment": "self-hosted",
        "workflow_ref": "acme/deploy/.github/workflows/deploy.yml@refs/heads/main",
        "job_workflow_ref": "acme/deploy/.github/workflows/deploy.yml@refs/heads/main",
    }


def mint(claims):
    header = {"alg": "ES256", "typ": "JWT", "kid": key_dict["kid"]}
    return jwt.encode(header, claims, key).decode()


meta = requests.get(f"{server}/.well-known/oauth-authorization-server", timeout=10).json()
for grant in (
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
):
    if grant not in meta.get("grant_types_supported", []):
        fail(f"{grant} not in discovery")
jwks = requests.get(meta["jwks_uri"], timeout=10).json()

# A workload has no client credentials: the library sends a bare client_id, which the tenant's
# endpoint ignores. `testing`: the test server listens on plain http on loopback.
client = OAuth2Client(
    f"{server}/oauth2/tenants/{tenant}/token", client_id="ci-job", testing=True
)


def validated(access_token):
    claims = jwt.decode(
        access_token,
        JsonWebKey.import_key_set(jwks),
        claims_options={
            "iss": {"essential": True, "value": meta["issuer"]},
            "aud": {"essential": True, "value": "deploy-api"},
            "exp": {"essential": True},
        },
    )
    claims.validate(leeway=5)
    return dict(claims)


exchanged = client.token_exchange(
    subject_token=mint(github_push_main()),
    subject_token_type="urn:ietf:params:oauth:token-type:jwt",
    audience="deploy-api",
    scope="deploy",
)
bearer = client.jwt_bearer(assertion=mint(github_push_main()), scope="deploy")

# A replayed subject token is refused with invalid_grant, which the library raises as such.
once = mint(github_push_main())
client.jwt_bearer(assertion=once)
try:
    client.jwt_bearer(assertion=once)
    fail("a replayed assertion was accepted")
except InvalidGrant:
    pass

print(
    json.dumps(
        {
            "rule_warnings": rule.get("warnings", []),
            "exchange": validated(exchanged.access_token),
            "exchange_expires_in": exchanged.expires_in,
            "jwt_bearer": validated(bearer.access_token),
            "refresh_token": exchanged.refresh_token or bearer.refresh_token,
        }
    )
)
