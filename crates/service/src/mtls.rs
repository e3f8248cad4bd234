//! Mutual-TLS client authentication rules (RFC 8705 section 2) over a certificate the listener
//! already saw: which certificate facts a client may be registered by, whether a certificate
//! carries the registered one, whether its chain leads to one of the tenant's CAs
//! (`tls_client_auth`), and whether its key is one of the client's registered keys
//! (`self_signed_tls_client_auth`).
//!
//! The TLS handshake proved that the peer holds the certificate's private key; this module
//! decides whether that certificate names this client. It must never accept a certificate
//! whose chain does not verify (validity period, key usage, client-auth EKU, signatures) for
//! `tls_client_auth`, never match a registration against a field of another kind (a SAN DNS
//! registration is never satisfied by a CN, nor by a SAN URI of the same text), and never do
//! I/O: the CA set and the keys come from the caller (the CA sets read into [`TrustAnchors`]
//! once per tenant and cached by the OAuth directory).

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use portcullis_jose::jwk::PublicKeyBytes;
use portcullis_jose::profile::client_assertion::ClientKeys;

/// The one certificate fact a `tls_client_auth` client is registered with (RFC 8705 section
/// 2.1.2: exactly one of these metadata parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSubject {
    /// `tls_client_auth_subject_dn`: the subject distinguished name, RFC 4514 text.
    SubjectDn(String),
    /// `tls_client_auth_san_dns`.
    SanDns(String),
    /// `tls_client_auth_san_uri` (a SPIFFE ID, for example).
    SanUri(String),
    /// `tls_client_auth_san_ip`.
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`.
    SanEmail(String),
}

/// A registration that is not exactly one well-formed certificate fact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTlsSubject {
    #[error("a tls_client_auth client is registered with exactly one of tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email")]
    NotExactlyOne,
    #[error("{0} is empty or too long")]
    BadValue(&'static str),
    #[error("tls_client_auth_san_ip is not an IP address")]
    BadIp,
}

impl TlsSubject {
    /// The metadata parameter's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SubjectDn(_) => "tls_client_auth_subject_dn",
            Self::SanDns(_) => "tls_client_auth_san_dns",
            Self::SanUri(_) => "tls_client_auth_san_uri",
            Self::SanIp(_) => "tls_client_auth_san_ip",
            Self::SanEmail(_) => "tls_client_auth_san_email",
        }
    }

    /// The registered value as text.
    pub fn value(&self) -> String {
        match self {
            Self::SubjectDn(v) | Self::SanDns(v) | Self::SanUri(v) | Self::SanEmail(v) => v.clone(),
            Self::SanIp(ip) => ip.to_string(),
        }
    }

    /// Reads a registration from the five optional metadata parameters: exactly one is set.
    pub fn from_metadata(
        subject_dn: Option<&str>,
        san_dns: Option<&str>,
        san_uri: Option<&str>,
        san_ip: Option<&str>,
        san_email: Option<&str>,
    ) -> Result<Self, BadTlsSubject> {
        let set = [subject_dn, san_dns, san_uri, san_ip, san_email]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if set != 1 {
            return Err(BadTlsSubject::NotExactlyOne);
        }
        let text = |v: &str, name: &'static str| {
            let v = v.trim();
            if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) {
                Err(BadTlsSubject::BadValue(name))
            } else {
                Ok(v.to_owned())
            }
        };
        Ok(if let Some(v) = subject_dn {
            Self::SubjectDn(normalize_dn(&text(v, "tls_client_auth_subject_dn")?))
        } else if let Some(v) = san_dns {
            Self::SanDns(text(v, "tls_client_auth_san_dns")?.to_ascii_lowercase())
        } else if let Some(v) = san_uri {
            Self::SanUri(text(v, "tls_client_auth_san_uri")?)
        } else if let Some(v) = san_ip {
            Self::SanIp(v.trim().parse().map_err(|_| BadTlsSubject::BadIp)?)
        } else if let Some(v) = san_email {
            Self::SanEmail(text(v, "tls_client_auth_san_email")?)
        } else {
            return Err(BadTlsSubject::NotExactlyOne);
        })
    }
}

impl TlsSubject {
    /// Reads a registration back from its stored parameter name and value (written by
    /// [`TlsSubject::kind`] and [`TlsSubject::value`] after [`TlsSubject::from_metadata`]).
    pub fn from_stored(kind: &str, value: &str) -> Result<Self, BadTlsSubject> {
        let v = Some(value);
        match kind {
            "tls_client_auth_subject_dn" => Self::from_metadata(v, None, None, None, None),
            "tls_client_auth_san_dns" => Self::from_metadata(None, v, None, None, None),
            "tls_client_auth_san_uri" => Self::from_metadata(None, None, v, None, None),
            "tls_client_auth_san_ip" => Self::from_metadata(None, None, None, v, None),
            "tls_client_auth_san_email" => Self::from_metadata(None, None, None, None, v),
            _ => Err(BadTlsSubject::NotExactlyOne),
        }
    }
}

/// Largest CA set accepted (PEM text): room for a few dozen CA certificates.
pub const MAX_CA_SET_BYTES: usize = 256 * 1024;
/// Most CA certificates in one set.
pub const MAX_CA_CERTIFICATES: usize = 64;

/// Why a CA set's PEM text is refused when it is registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCaSet {
    #[error("pem is larger than {MAX_CA_SET_BYTES} bytes")]
    TooLarge,
    #[error("pem must hold 1 to {MAX_CA_CERTIFICATES} complete PEM CERTIFICATE blocks")]
    NotPem,
    #[error("certificate {0} of pem is not a DER X.509 certificate")]
    NotCertificate(usize),
    #[error("certificate {0} of pem is not a CA certificate (basicConstraints cA is not set)")]
    NotCa(usize),
}

/// Reads a CA set: every `CERTIFICATE` block of `pem` (text between blocks, such as the
/// comments many bundles carry, is ignored), each a parseable X.509 CA certificate. Returns the
/// DER of each, in order.
pub fn parse_ca_set(pem: &str) -> Result<Vec<Vec<u8>>, BadCaSet> {
    if pem.len() > MAX_CA_SET_BYTES {
        return Err(BadCaSet::TooLarge);
    }
    let mut out = Vec::new();
    for der in portcullis_core::pem::certificates(pem) {
        let der = der.map_err(|_| BadCaSet::NotPem)?;
        let index = out.len() + 1;
        let (tail, cert) =
            X509Certificate::from_der(&der).map_err(|_| BadCaSet::NotCertificate(index))?;
        if !tail.is_empty() {
            return Err(BadCaSet::NotCertificate(index));
        }
        if !cert.is_ca() {
            return Err(BadCaSet::NotCa(index));
        }
        out.push(der);
        if out.len() > MAX_CA_CERTIFICATES {
            return Err(BadCaSet::NotPem);
        }
    }
    if out.is_empty() {
        return Err(BadCaSet::NotPem);
    }
    Ok(out)
}

/// A DN as compared here: RDNs split on unescaped `,`, each attribute type upper-cased, spaces
/// around `=` and `,` dropped. (A simplification of RFC 4517 distinguishedNameMatch that is
/// exact for the DNs certificate tooling prints.)
fn normalize_dn(dn: &str) -> String {
    let mut rdns = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            rdns.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    rdns.push(current);
    rdns.iter()
        .map(|rdn| match rdn.split_once('=') {
            Some((t, v)) => format!("{}={}", t.trim().to_ascii_uppercase(), v.trim()),
            None => rdn.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a certificate does not authenticate a client (for the audit log, never the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MtlsFailure {
    #[error("no_client_certificate")]
    NoCertificate,
    #[error("certificate_unparseable")]
    Unparseable,
    #[error("certificate_chain_untrusted")]
    Untrusted,
    #[error("certificate_subject_mismatch")]
    SubjectMismatch,
    #[error("certificate_key_not_registered")]
    KeyNotRegistered,
    #[error("no_tenant_ca")]
    NoTenantCa,
}

impl MtlsFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCertificate => "no_client_certificate",
            Self::Unparseable => "certificate_unparseable",
            Self::Untrusted => "certificate_chain_untrusted",
            Self::SubjectMismatch => "certificate_subject_mismatch",
            Self::KeyNotRegistered => "certificate_key_not_registered",
            Self::NoTenantCa => "no_tenant_ca",
        }
    }
}

/// A tenant's CA sets read into one chain verifier: what `tls_client_auth` checks certificates
/// against. Building it parses every CA certificate and sets up webpki's trust anchors, so it is
/// built once per tenant and cached (the OAuth directory's `trust_anchors`), not per request.
#[derive(Clone)]
pub struct TrustAnchors {
    /// `None`: no CA that parses, so nothing authenticates.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("any", &self.verifier.is_some())
            .finish()
    }
}

impl TrustAnchors {
    /// From the PEM text of each stored CA set. Each set was checked when it was registered;
    /// one that no longer reads vouches for nobody.
    pub fn from_pem_sets<'a>(sets: impl IntoIterator<Item = &'a str>) -> Self {
        let cas: Vec<Vec<u8>> = sets
            .into_iter()
            .filter_map(|pem| parse_ca_set(pem).ok())
            .flatten()
            .collect();
        Self::from_der(&cas)
    }

    /// From DER CA certificates; one that does not parse is skipped.
    pub fn from_der(cas: &[Vec<u8>]) -> Self {
        let mut roots = RootCertStore::empty();
        for ca in cas {
            // A stored CA that no longer parses is skipped: it can vouch for nobody.
            let _ = roots.add(CertificateDer::from(ca.clone()));
        }
        if roots.is_empty() {
            return Self { verifier: None };
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .ok();
        Self { verifier }
    }

    /// Whether any CA can vouch for a certificate.
    pub fn is_empty(&self) -> bool {
        self.verifier.is_none()
    }
}

/// `tls_client_auth`: the end-entity certificate chains to one of `cas` (DER trust anchors,
/// the tenant's CA set) for client authentication at `now`, through the intermediates the
/// client sent if it needs them, and carries `subject`. Parses the CAs on every call: the
/// token endpoint uses [`tls_client_auth_with`] and cached anchors.
pub fn tls_client_auth(
    der: &[u8],
    intermediates: &[Vec<u8>],
    cas: &[Vec<u8>],
    subject: &TlsSubject,
    now_unix_secs: u64,
) -> Result<(), MtlsFailure> {
    tls_client_auth_with(
        der,
        intermediates,
        &TrustAnchors::from_der(cas),
        subject,
        now_unix_secs,
    )
}

/// `tls_client_auth` against a tenant's anchors read once ([`TrustAnchors`]). The
/// intermediates are untrusted: they only help build a path from the end-entity certificate to
/// an anchor, and every certificate on that path is checked (signature, validity, CA
/// constraints).
pub fn tls_client_auth_with(
    der: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &TrustAnchors,
    subject: &TlsSubject,
    now_unix_secs: u64,
) -> Result<(), MtlsFailure> {
    let Some(verifier) = &anchors.verifier else {
        return Err(MtlsFailure::NoTenantCa);
    };
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    verifier
        .verify_client_cert(
            &CertificateDer::from(der),
            &intermediates,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_unix_secs)),
        )
        .map_err(|_| MtlsFailure::Untrusted)?;
    if carries(der, subject)? {
        Ok(())
    } else {
        Err(MtlsFailure::SubjectMismatch)
    }
}

/// Whether the certificate carries the registered fact, in a field of the same kind.
pub fn carries(der: &[u8], subject: &TlsSubject) -> Result<bool, MtlsFailure> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| MtlsFailure::Unparseable)?;
    if !rest.is_empty() {
        return Err(MtlsFailure::Unparseable);
    }
    if let TlsSubject::SubjectDn(want) = subject {
        // RFC 4514 writes the last RDN first; tools print either order. The RDNs must be the
        // same in sequence, read one way or the other.
        let got = normalize_dn(&cert.subject().to_string());
        let reversed = got.split(',').rev().collect::<Vec<_>>().join(",");
        return Ok(got == *want || reversed == *want);
    }
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san.value.general_names.clone(),
        Ok(None) => Vec::new(),
        Err(_) => return Err(MtlsFailure::Unparseable),
    };
    Ok(names.iter().any(|n| match (subject, n) {
        (TlsSubject::SanDns(want), GeneralName::DNSName(got)) => got.eq_ignore_ascii_case(want),
        (TlsSubject::SanUri(want), GeneralName::URI(got)) => got == want,
        (TlsSubject::SanEmail(want), GeneralName::RFC822Name(got)) => got == want,
        (TlsSubject::SanIp(want), GeneralName::IPAddress(got)) => match want {
            IpAddr::V4(v4) => *got == v4.octets().as_slice(),
            IpAddr::V6(v6) => *got == v6.octets().as_slice(),
        },
        _ => false,
    }))
}

/// `self_signed_tls_client_auth`: the certificate's public key is one of the client's registered
/// keys (parsed once by jose, from the inline JWKS or the cached `jwks_uri` document). The chain
/// is not validated: the registration is the trust.
pub fn self_signed_tls_client_auth(der: &[u8], keys: &ClientKeys) -> Result<(), MtlsFailure> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| MtlsFailure::Unparseable)?;
    let spki = cert.public_key();
    let presented = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => PublicKeyBytes::Rsa {
            n: rsa.modulus,
            e: rsa.exponent,
        },
        _ => PublicKeyBytes::Raw(spki.subject_public_key.data.as_ref()),
    };
    if keys.holds(presented) {
        Ok(())
    } else {
        Err(MtlsFailure::KeyNotRegistered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };

    type Ca = CertifiedIssuer<'static, KeyPair>;

    fn ca(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("ca")
    }

    fn client(ca: &Ca, cn: &str, sans: Vec<SanType>) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::OrganizationName, "Acme");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = sans;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        p.signed_by(&key, ca).expect("sign").der().to_vec()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn spiffe() -> SanType {
        SanType::URI("spiffe://acme.test/payments".try_into().expect("uri"))
    }

    #[test]
    fn exactly_one_registration_fact_is_accepted() {
        let one = |i: usize, v: &str| {
            let mut a = [None; 5];
            a[i] = Some(v);
            TlsSubject::from_metadata(a[0], a[1], a[2], a[3], a[4])
        };
        assert_eq!(
            one(0, "cn = client-1 ,o=Acme"),
            Ok(TlsSubject::SubjectDn("CN=client-1,O=Acme".into()))
        );
        assert_eq!(
            one(1, "Svc.Acme.test"),
            Ok(TlsSubject::SanDns("svc.acme.test".into()))
        );
        assert_eq!(
            one(3, "10.1.2.3"),
            Ok(TlsSubject::SanIp([10, 1, 2, 3].into()))
        );
        assert_eq!(one(3, "host"), Err(BadTlsSubject::BadIp));
        assert!(one(2, "").is_err());
        assert!(one(4, "a\nb").is_err());
        assert_eq!(
            TlsSubject::from_metadata(None, None, None, None, None),
            Err(BadTlsSubject::NotExactlyOne)
        );
        assert_eq!(
            TlsSubject::from_metadata(Some("CN=a"), Some("a"), None, None, None),
            Err(BadTlsSubject::NotExactlyOne)
        );
    }

    #[test]
    fn tls_client_auth_needs_the_tenant_ca_and_the_registered_fact_in_its_own_field() {
        let acme = ca("acme clients");
        let other = ca("someone else");
        let sans = vec![
            SanType::DnsName("svc.acme.test".try_into().expect("dns")),
            spiffe(),
            SanType::IpAddress([10, 1, 2, 3].into()),
            SanType::Rfc822Name("svc@acme.test".try_into().expect("email")),
        ];
        let good = client(&acme, "client-1", sans.clone());
        let cas = vec![acme.der().to_vec()];
        for subject in [
            TlsSubject::SubjectDn(normalize_dn("O=Acme, CN=client-1")),
            TlsSubject::SanDns("svc.acme.test".into()),
            TlsSubject::SanUri("spiffe://acme.test/payments".into()),
            TlsSubject::SanIp([10, 1, 2, 3].into()),
            TlsSubject::SanEmail("svc@acme.test".into()),
        ] {
            assert_eq!(
                tls_client_auth(&good, &[], &cas, &subject, now()),
                Ok(()),
                "{subject:?}"
            );
        }
        // Another CA's certificate with the same names.
        let stranger = client(&other, "client-1", sans);
        let dns = TlsSubject::SanDns("svc.acme.test".into());
        assert_eq!(
            tls_client_auth(&stranger, &[], &cas, &dns, now()),
            Err(MtlsFailure::Untrusted)
        );
        // No CA set for the tenant: nothing authenticates.
        assert_eq!(
            tls_client_auth(&good, &[], &[], &dns, now()),
            Err(MtlsFailure::NoTenantCa)
        );
        // The right subject but the wrong SAN; a name in the CN does not count as a SAN; a SAN
        // URI with the text of a DNS name does not count either.
        let wrong_san = client(
            &acme,
            "svc.acme.test",
            vec![SanType::DnsName("other.acme.test".try_into().expect("dns"))],
        );
        assert_eq!(
            tls_client_auth(&wrong_san, &[], &cas, &dns, now()),
            Err(MtlsFailure::SubjectMismatch)
        );
        let uri_only = client(&acme, "client-1", vec![spiffe()]);
        assert_eq!(
            tls_client_auth(
                &uri_only,
                &[],
                &cas,
                &TlsSubject::SanDns("spiffe://acme.test/payments".into()),
                now()
            ),
            Err(MtlsFailure::SubjectMismatch)
        );
        // Outside its validity period (rcgen's default ends in 4096; start is 1975).
        assert_eq!(
            tls_client_auth(&good, &[], &cas, &dns, 100),
            Err(MtlsFailure::Untrusted)
        );
        assert_eq!(
            tls_client_auth(b"not a certificate", &[], &cas, &dns, now()),
            Err(MtlsFailure::Untrusted)
        );
    }

    /// An intermediate CA between the tenant's CA and the client: the chain is built through
    /// the intermediate the client sent, and only through one the tenant's CA issued.
    #[test]
    fn tls_client_auth_builds_the_chain_through_the_intermediates_the_client_sent() {
        let root = ca("acme root");
        let intermediate = {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(DnType::CommonName, "acme issuing");
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            CertifiedIssuer::signed_by(p, KeyPair::generate().expect("key"), &root)
                .expect("intermediate")
        };
        // An intermediate with the same name, issued by someone else.
        let impostor = {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(DnType::CommonName, "acme issuing");
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            CertifiedIssuer::signed_by(p, KeyPair::generate().expect("key"), &ca("someone"))
                .expect("impostor")
        };
        let leaf = client(&intermediate, "client-1", vec![spiffe()]);
        let cas = vec![root.der().to_vec()];
        let uri = TlsSubject::SanUri("spiffe://acme.test/payments".into());
        let sent = [intermediate.der().to_vec()];
        assert_eq!(tls_client_auth(&leaf, &sent, &cas, &uri, now()), Ok(()));
        // Without the intermediate there is no path to the tenant's CA.
        assert_eq!(
            tls_client_auth(&leaf, &[], &cas, &uri, now()),
            Err(MtlsFailure::Untrusted)
        );
        // Nor through a look-alike intermediate, nor one the client sent that vouches for a
        // certificate of another CA.
        assert_eq!(
            tls_client_auth(&leaf, &[impostor.der().to_vec()], &cas, &uri, now()),
            Err(MtlsFailure::Untrusted)
        );
        let stranger = client(&ca("elsewhere"), "client-1", vec![spiffe()]);
        assert_eq!(
            tls_client_auth(&stranger, &sent, &cas, &uri, now()),
            Err(MtlsFailure::Untrusted)
        );
        // Garbage among the intermediates does not help, and does not break a good path.
        assert_eq!(
            tls_client_auth(
                &leaf,
                &[b"junk".to_vec(), sent[0].clone()],
                &cas,
                &uri,
                now()
            ),
            Ok(())
        );
    }

    /// Anchors read once from the stored PEM sets check exactly as the per-call form does; a
    /// set that no longer reads vouches for nobody, and no set at all authenticates nobody.
    #[test]
    fn trust_anchors_read_once_from_pem_sets_check_like_the_per_call_form() {
        let acme = ca("acme clients");
        let other = ca("someone else");
        let dns = TlsSubject::SanDns("svc.acme.test".into());
        let sans = || vec![SanType::DnsName("svc.acme.test".try_into().expect("dns"))];
        let (good, stranger) = (
            client(&acme, "client-1", sans()),
            client(&other, "client-1", sans()),
        );
        let pem = acme.pem();
        let anchors = TrustAnchors::from_pem_sets(["not a PEM set", pem.as_str()]);
        assert!(!anchors.is_empty());
        assert_eq!(
            tls_client_auth_with(&good, &[], &anchors, &dns, now()),
            Ok(())
        );
        assert_eq!(
            tls_client_auth_with(&stranger, &[], &anchors, &dns, now()),
            Err(MtlsFailure::Untrusted)
        );
        let none = TrustAnchors::from_pem_sets(["not a PEM set"]);
        assert!(none.is_empty());
        assert_eq!(
            tls_client_auth_with(&good, &[], &none, &dns, now()),
            Err(MtlsFailure::NoTenantCa)
        );
        assert!(TrustAnchors::from_pem_sets([]).is_empty());
    }

    #[test]
    fn a_stored_registration_reads_back_as_registered() {
        for subject in [
            TlsSubject::SubjectDn("CN=client-1,O=Acme".into()),
            TlsSubject::SanDns("svc.acme.test".into()),
            TlsSubject::SanUri("spiffe://acme.test/payments".into()),
            TlsSubject::SanIp([10, 1, 2, 3].into()),
            TlsSubject::SanEmail("svc@acme.test".into()),
        ] {
            assert_eq!(
                TlsSubject::from_stored(subject.kind(), &subject.value()),
                Ok(subject)
            );
        }
        assert!(TlsSubject::from_stored("tls_client_auth_cn", "x").is_err());
    }

    #[test]
    fn a_ca_set_is_one_or_more_ca_certificates_in_pem() {
        let acme = ca("acme clients");
        let other = ca("other");
        let bundle = format!("# Acme\n{}\n# Other\n{}", acme.pem(), other.pem());
        assert_eq!(
            parse_ca_set(&bundle),
            Ok(vec![acme.der().to_vec(), other.der().to_vec()])
        );
        assert_eq!(parse_ca_set(""), Err(BadCaSet::NotPem));
        assert_eq!(parse_ca_set("hello"), Err(BadCaSet::NotPem));
        let cut = acme.pem();
        assert_eq!(
            parse_ca_set(&cut[..cut.len() - 20]),
            Err(BadCaSet::NotPem),
            "an unterminated block"
        );
        assert_eq!(
            parse_ca_set("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
            Err(BadCaSet::NotCertificate(1))
        );
        // An end-entity certificate is not a trust anchor.
        let leaf = CertificateParams::new(vec!["svc.acme.test".to_owned()])
            .expect("params")
            .self_signed(&KeyPair::generate().expect("key"))
            .expect("cert");
        assert_eq!(
            parse_ca_set(&format!("{}{}", acme.pem(), leaf.pem())),
            Err(BadCaSet::NotCa(2))
        );
        assert_eq!(
            parse_ca_set(&"x".repeat(MAX_CA_SET_BYTES + 1)),
            Err(BadCaSet::TooLarge)
        );
    }

    #[test]
    fn self_signed_needs_the_certificate_key_in_the_registered_jwks() {
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
            let key = KeyPair::generate_for(alg).expect("key");
            let cert = CertificateParams::new(vec!["client".to_owned()])
                .expect("params")
                .self_signed(&key)
                .expect("cert");
            let raw = key.public_key_raw();
            let jwk = if alg == &rcgen::PKCS_ED25519 {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(raw)})
            } else {
                serde_json::json!({"kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..])})
            };
            let keys = ClientKeys::parse(&serde_json::json!({"keys": [jwk]}), 8).expect("jwks");
            assert_eq!(self_signed_tls_client_auth(cert.der(), &keys), Ok(()));
            let other = KeyPair::generate_for(alg).expect("key");
            let stranger = CertificateParams::new(vec!["client".to_owned()])
                .expect("params")
                .self_signed(&other)
                .expect("cert");
            assert_eq!(
                self_signed_tls_client_auth(stranger.der(), &keys),
                Err(MtlsFailure::KeyNotRegistered)
            );
            // The client registered only the stranger's key: its own certificate is refused.
            let raw = other.public_key_raw();
            let jwk = if alg == &rcgen::PKCS_ED25519 {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(raw)})
            } else {
                serde_json::json!({"kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..])})
            };
            let others = ClientKeys::parse(&serde_json::json!({"keys": [jwk]}), 8).expect("jwks");
            assert_eq!(
                self_signed_tls_client_auth(cert.der(), &others),
                Err(MtlsFailure::KeyNotRegistered)
            );
        }
    }
}
