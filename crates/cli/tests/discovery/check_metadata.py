"""Validates an RFC 8414 metadata document with authlib's AuthorizationServerMetadata.

Reads the JSON document on stdin; exits non-zero with the reason when authlib refuses it.
Arguments name registry keys whose validator is skipped (each skip is explained by the caller,
crates/cli/tests/it/token_service.rs); with none, this is exactly `validate()`.
"""
import json
import sys

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

skip = set(sys.argv[1:])
metadata = AuthorizationServerMetadata(json.load(sys.stdin))
unknown = skip - set(metadata.REGISTRY_KEYS)
if unknown:
    sys.exit(f"not authlib registry keys: {sorted(unknown)}")
if not skip:
    metadata.validate()
for key in metadata.REGISTRY_KEYS:
    if key not in skip:
        getattr(metadata, f"validate_{key}")()
print(json.dumps({"ok": True, "issuer": metadata["issuer"], "skipped": sorted(skip)}))
