"""Validates a discovery document with authlib: RFC 8414's AuthorizationServerMetadata, or with
`--oidc` first, OpenID Connect Discovery's OpenIDProviderMetadata.

Reads the JSON document on stdin; exits non-zero with the reason when authlib refuses it.
Other arguments name registry keys whose validator is skipped (each skip is explained by the
caller, crates/cli/tests/it/token_service.rs); with none, this is exactly `validate()`.
"""
import json
import sys

args = sys.argv[1:]
if args[:1] == ["--oidc"]:
    from authlib.oidc.discovery import OpenIDProviderMetadata as Metadata

    args = args[1:]
else:
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata as Metadata

skip = set(args)
metadata = Metadata(json.load(sys.stdin))
unknown = skip - set(metadata.REGISTRY_KEYS)
if unknown:
    sys.exit(f"not authlib registry keys: {sorted(unknown)}")
if not skip:
    metadata.validate()
for key in metadata.REGISTRY_KEYS:
    if key not in skip:
        getattr(metadata, f"validate_{key}")()
print(json.dumps({"ok": True, "issuer": metadata["issuer"], "skipped": sorted(skip)}))
