"""An independent relying party (issue 16): Python authlib's OAuth2Session performs the whole
authorization code flow with PKCE (S256) and a nonce against a running Portcullis over HTTP,
posting the real sign-in and consent forms with their CSRF tokens as a browser without
JavaScript would, validates the ID token with authlib's JOSE against the published JWKS (signature,
iss, aud, exp, nonce), then refreshes (rotation) and checks the old refresh token is refused.

Usage: authlib_rp.py ISSUER CLIENT_ID REDIRECT_URI USERNAME PASSWORD
Prints one JSON line: what the Rust test judges. Exits non-zero with the reason on any failure.
Nothing here is Portcullis code: only standard endpoints, forms and authlib.
"""
import html
import json
import re
import sys
import urllib.parse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core import CodeIDToken

issuer, client_id, redirect_uri, username, password = sys.argv[1:6]


def fail(why):
    sys.exit(f"relying party: {why}")


def hidden_fields(page):
    """The hidden inputs of the page's form (the CSRF token and the flow's parameters)."""
    return {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(
            r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page
        )
    }


meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
if meta["issuer"] != issuer:
    fail(f"issuer mismatch: {meta['issuer']}")
if "S256" not in meta["code_challenge_methods_supported"]:
    fail("no S256")

rp = OAuth2Session(
    client_id,
    scope="openid profile offline_access",
    redirect_uri=redirect_uri,
    code_challenge_method="S256",
    token_endpoint_auth_method="none",
)
verifier = generate_token(64)
nonce = generate_token(24)
url, state = rp.create_authorization_url(
    meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
)

# The user agent: keeps cookies, follows no redirects, posts the forms it is shown.
browser = requests.Session()
page = browser.get(url, allow_redirects=False, timeout=10)
if page.status_code != 200 or 'name="password"' not in page.text:
    fail(f"no sign-in page: {page.status_code}")
fields = hidden_fields(page.text)
if not fields.get("csrf_token"):
    fail("the sign-in form has no CSRF token")
# Without the CSRF token the form is refused, and nothing is signed in.
no_csrf = {k: v for k, v in fields.items() if k != "csrf_token"}
no_csrf.update(login=username, password=password)
refused = browser.post(
    f"{issuer}/oauth2/authorize/sign-in", data=no_csrf, allow_redirects=False, timeout=30
)
if refused.status_code < 400:
    fail(f"a sign-in without its CSRF token was accepted: {refused.status_code}")
fields.update(login=username, password=password)
consent = browser.post(
    f"{issuer}/oauth2/authorize/sign-in", data=fields, allow_redirects=False, timeout=60
)
if consent.status_code != 200 or 'name="decision"' not in consent.text:
    fail(f"no consent page after signing in: {consent.status_code} {consent.text[:300]}")
fields = hidden_fields(consent.text)
fields["decision"] = "allow"
back = browser.post(
    f"{issuer}/oauth2/authorize/consent", data=fields, allow_redirects=False, timeout=10
)
location = back.headers.get("location", "")
if back.status_code not in (302, 303) or not location.startswith(redirect_uri):
    fail(f"no redirect to the app: {back.status_code} {location}")
query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
if query.get("state") != state or query.get("iss") != issuer:
    fail(f"state or iss wrong: {query}")

# The token request: authlib sends the code with the PKCE verifier.
token = rp.fetch_token(
    meta["token_endpoint"],
    authorization_response=location,
    code_verifier=verifier,
)

# The ID token, validated with authlib's JOSE against the JWKS.
jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
claims = jwt.decode(
    token["id_token"],
    jwks,
    claims_cls=CodeIDToken,
    claims_options={"iss": {"essential": True, "value": issuer}},
    claims_params={"nonce": nonce, "client_id": client_id},
)
claims.validate()
header = json.loads(
    __import__("base64").urlsafe_b64decode(token["id_token"].split(".")[0] + "==")
)

# Refresh: a new refresh token (rotation), and the old one refused afterwards.
first_refresh = token["refresh_token"]
refreshed = rp.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
if refreshed["refresh_token"] == first_refresh:
    fail("the refresh token did not rotate")
if not refreshed.get("access_token"):
    fail("no access token from the refresh")
refreshed_id = jwt.decode(refreshed["id_token"], jwks, claims_cls=CodeIDToken,
                          claims_params={"client_id": client_id})
refreshed_id.validate()
if refreshed_id["sub"] != claims["sub"]:
    fail("the refreshed ID token names another user")

print(
    json.dumps(
        {
            "sub": claims["sub"],
            "aud": claims["aud"],
            "nonce": claims["nonce"],
            "alg": header["alg"],
            "sid": claims.get("sid"),
            "scope": token.get("scope"),
            "rotated": True,
            "refreshed_refresh_token": refreshed["refresh_token"],
            "first_refresh_token": first_refresh,
        }
    )
)
