//! Untrusted token bytes through the strict JWS parser and the JWKS parser: neither may panic,
//! and a token the parser accepts must have a signing input that is a prefix of the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_jose::{compact, parse_jwks, Alg};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(u) = compact::parse(s, 8192) {
            assert!(s.starts_with(u.signing_input));
            if let Ok(claims) = u.claims() {
                let _ = claims.str("iss");
                let _ = claims.int("exp");
                let _ = claims.strings("aud");
                let _ = claims.string_array("roles");
            }
        }
    }
    let _ = parse_jwks(data, &Alg::ALL);
});
