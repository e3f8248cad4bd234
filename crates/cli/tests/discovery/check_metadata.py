"""Validates an RFC 8414 metadata document with authlib's AuthorizationServerMetadata.

Reads the JSON document on stdin; exits non-zero with the reason when authlib refuses it.
Run by crates/cli/tests/token_service.rs.
"""
import json
import sys

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

metadata = AuthorizationServerMetadata(json.load(sys.stdin))
metadata.validate()
print(json.dumps({"ok": True, "issuer": metadata["issuer"]}))
