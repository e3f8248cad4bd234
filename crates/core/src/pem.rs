//! PEM `CERTIFICATE` blocks (RFC 7468) read from text: what a TLS-terminating proxy's
//! client-certificate header and a tenant's CA set are made of. Text between blocks (the
//! comments many bundles carry) is ignored; whitespace inside a block is too, so a block may sit
//! on one line.
//!
//! This module only splits and decodes: whether a block is a certificate, and whether it is to
//! be trusted, is the caller's to judge. It must never read anything but the text it is given.

use base64::Engine as _;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// A `CERTIFICATE` block that does not end, or whose body is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPem;

/// The DER of each `CERTIFICATE` block of `text`, in order. The first block that does not
/// decode is an error, and nothing after it is read.
pub fn certificates(text: &str) -> impl Iterator<Item = Result<Vec<u8>, NotPem>> + '_ {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest.take()?;
        let start = text.find(BEGIN)? + BEGIN.len();
        let Some(len) = text[start..].find(END) else {
            return Some(Err(NotPem));
        };
        let body: String = text[start..start + len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        match base64::engine::general_purpose::STANDARD.decode(body) {
            Ok(der) => {
                rest = Some(&text[start + len + END.len()..]);
                Some(Ok(der))
            }
            Err(_) => Some(Err(NotPem)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_in_order_between_any_text_and_a_bad_one_ends_the_reading() {
        let text = "bundle comment\n-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n\
                    between\n-----BEGIN CERTIFICATE-----BAUG-----END CERTIFICATE-----";
        let read: Vec<_> = certificates(text).collect();
        assert_eq!(read, [Ok(vec![1, 2, 3]), Ok(vec![4, 5, 6])]);
        assert_eq!(certificates("no pem here").count(), 0);
        let bad = "-----BEGIN CERTIFICATE-----!!!-----END CERTIFICATE-----\
                   -----BEGIN CERTIFICATE-----AQID-----END CERTIFICATE-----";
        assert_eq!(certificates(bad).collect::<Vec<_>>(), [Err(NotPem)]);
        let open = "-----BEGIN CERTIFICATE-----AQID-----END CERTIFICATE----------BEGIN CERTIFICATE-----AQID";
        assert_eq!(
            certificates(open).collect::<Vec<_>>(),
            [Ok(vec![1, 2, 3]), Err(NotPem)]
        );
    }
}
