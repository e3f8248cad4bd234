//! Base62 (`0-9A-Za-z`) for credential bodies: no punctuation, so a double-click selects a whole
//! token and secret scanners can match it with a simple character class.

use rand::RngCore;

pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `len` characters drawn uniformly from the alphabet (rejection sampling: no modulo bias).
pub fn random(rng: &mut dyn RngCore, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill_bytes(&mut buf);
        for &b in &buf {
            // 248 = 4 * 62: bytes at or above it would bias the first characters.
            if b < 248 {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
                if out.len() == len {
                    break;
                }
            }
        }
    }
    out
}

/// `n` as exactly `width` base62 digits, most significant first. `n` must fit.
pub fn encode_fixed(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    debug_assert_eq!(n, 0, "value does not fit in {width} base62 digits");
    digits.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn random_has_requested_length_and_alphabet() {
        let mut rng = SmallRng::seed_from_u64(7);
        for len in [1, 12, 22, 100] {
            let s = random(&mut rng, len);
            assert_eq!(s.len(), len);
            assert!(is_base62(&s));
        }
    }

    #[test]
    fn random_is_roughly_uniform() {
        let mut rng = SmallRng::seed_from_u64(42);
        let s = random(&mut rng, 62_000);
        let mut counts = [0usize; 62];
        for b in s.bytes() {
            let i = ALPHABET.iter().position(|&c| c == b).expect("in alphabet");
            counts[i] += 1;
        }
        // Expected 1000 each; a biased sampler (plain modulo over 256) would give the first
        // eight characters ~25% more.
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn fixed_width_encoding() {
        assert_eq!(encode_fixed(0, 6), "000000");
        assert_eq!(encode_fixed(61, 2), "0z");
        assert_eq!(encode_fixed(62, 2), "10");
        assert_eq!(encode_fixed(u64::from(u32::MAX), 6).len(), 6);
    }
}
