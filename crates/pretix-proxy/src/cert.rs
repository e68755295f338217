//! The certificate and its key, read from their PEM text (pure), and the self-signed staging
//! certificate. nginx loads both with OpenSSL at `nginx -t`; what is checked here comes first so
//! the error names the file and the fix instead of an OpenSSL message.

use rcgen::PublicKeyData;
use x509_parser::pem::Pem;

/// Fewer days left than this is a warning.
pub const WARN_DAYS: i64 = 14;
/// The algorithm identifiers of RSA and EC public keys in a certificate.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// How long a self-signed staging certificate is valid.
pub const SELF_SIGNED_DAYS: i64 = 90;

/// What the certificate file says, and whether the key belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The first certificate of the file (the server's own), DER.
    pub leaf_der: Vec<u8>,
    /// The DNS names it covers (subjectAltName; the common name when there is none).
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// Issuer and subject are the same: nobody vouches for it.
    pub self_signed: bool,
    /// How many certificates the file holds (the leaf and its chain).
    pub chain_len: usize,
    pub key: KeyCheck,
}

/// Whether the private key belongs to the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    Matches,
    /// A key form this tool does not read (an RSA key in the old PKCS#1 form, say): `nginx -t`,
    /// which loads both, still refuses a mismatch before the site goes live.
    LeftToNginx,
}

impl CertInfo {
    /// Whether `server_name` is one of the names, directly or through a `*.` wildcard of one label.
    pub fn covers(&self, server_name: &str) -> bool {
        self.names.iter().any(|name| {
            let name = name.to_ascii_lowercase();
            name == server_name
                || name.strip_prefix("*.").is_some_and(|suffix| {
                    server_name
                        .split_once('.')
                        .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
                })
        })
    }

    /// Whole days until it expires (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// Reads the certificate file and the key file. The error says what is wrong, without any key
/// material.
pub fn inspect(certificate_pem: &[u8], key_pem: &[u8]) -> Result<CertInfo, String> {
    let mut ders = Vec::new();
    for pem in Pem::iter_from_buffer(certificate_pem) {
        let pem = pem.map_err(|error| format!("is not a PEM certificate file ({error})"))?;
        if pem.label == "CERTIFICATE" {
            ders.push(pem.contents);
        }
    }
    let Some(leaf_der) = ders.first().cloned() else {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    };
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der)
        .map_err(|error| format!("holds a certificate that cannot be read ({error})"))?;
    let mut names: Vec<String> = match leaf.subject_alternative_name() {
        Ok(Some(extension)) => extension
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names = leaf
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
    }
    let key_text = std::str::from_utf8(key_pem).map_err(|_| "the key file is not PEM text".to_owned())?;
    if !key_text.contains("PRIVATE KEY-----") {
        return Err("the key file holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)".to_owned());
    }
    if key_text.contains("ENCRYPTED PRIVATE KEY") || key_text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "the key file is encrypted with a passphrase: nginx would ask for it at every start; decrypt it \
             (openssl pkey -in KEY -out KEY.plain) and keep it root-only"
                .to_owned(),
        );
    }
    let key = match rcgen::KeyPair::from_pem(key_text) {
        Ok(pair) if pair.der_bytes() == leaf.public_key().subject_public_key.data.as_ref() => KeyCheck::Matches,
        Ok(_) => {
            return Err(
                "the key does not belong to the certificate: give the key the certificate was issued for".to_owned(),
            );
        }
        // A key form rcgen does not read. nginx -t refuses a key of the certificate's own type
        // that does not belong to it ("key values mismatch"), but OpenSSL files a key of another
        // type into that type's slot without a word, and the site would fail every handshake:
        // the type, at least, is checked here.
        Err(_) => {
            let certificate_type = leaf.public_key().algorithm.algorithm.to_id_string();
            let key_type = if key_text.contains("BEGIN RSA PRIVATE KEY") {
                Some(("an RSA key", RSA_ENCRYPTION))
            } else if key_text.contains("BEGIN EC PRIVATE KEY") {
                Some(("an EC key", EC_PUBLIC_KEY))
            } else {
                None
            };
            match key_type {
                Some((name, oid)) if certificate_type != oid => {
                    return Err(format!(
                        "the key does not belong to the certificate: it is {name}, the certificate's is not; give the \
                         key the certificate was issued for"
                    ));
                }
                _ => KeyCheck::LeftToNginx,
            }
        }
    };
    Ok(CertInfo {
        names,
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
        self_signed: leaf.issuer().as_raw() == leaf.subject().as_raw(),
        chain_len: ders.len(),
        key,
        leaf_der,
    })
}

/// A self-signed certificate for `server_name` and its new key, both PEM. The subject says
/// what it is, so anyone who looks at it in a browser sees it.
pub struct SelfSigned {
    pub certificate_pem: String,
    pub key_pem: String,
}

pub fn make_self_signed(server_name: &str, now: i64) -> Result<SelfSigned, String> {
    let key = rcgen::KeyPair::generate().map_err(|error| format!("generate a key: {error}"))?;
    let mut params = rcgen::CertificateParams::new(vec![server_name.to_owned()])
        .map_err(|error| format!("certificate for {server_name}: {error}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{server_name} (SELF-SIGNED STAGING CERTIFICATE, pretix-proxy)"),
    );
    let start = time::OffsetDateTime::from_unix_timestamp(now - 3600).map_err(|error| error.to_string())?;
    params.not_before = start;
    params.not_after = start + time::Duration::days(SELF_SIGNED_DAYS);
    let certificate = params
        .self_signed(&key)
        .map_err(|error| format!("sign the certificate: {error}"))?;
    Ok(SelfSigned {
        certificate_pem: certificate.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_self_signed_certificate_reads_back() {
        let made = make_self_signed("tickets.example.test", NOW).expect("make");
        let info = inspect(made.certificate_pem.as_bytes(), made.key_pem.as_bytes()).expect("inspect");
        assert!(info.covers("tickets.example.test"));
        assert!(!info.covers("other.example.test"));
        assert!(info.self_signed);
        assert_eq!(info.key, KeyCheck::Matches);
        assert_eq!(info.days_left(NOW), SELF_SIGNED_DAYS - 1);
    }

    #[test]
    fn a_foreign_key_is_refused() {
        let one = make_self_signed("a.example.test", NOW).expect("make");
        let two = make_self_signed("a.example.test", NOW).expect("make");
        let error = inspect(one.certificate_pem.as_bytes(), two.key_pem.as_bytes()).expect_err("mismatch");
        assert!(error.contains("does not belong"), "{error}");
    }

    #[test]
    fn wildcards_cover_one_label() {
        let info = CertInfo {
            leaf_der: Vec::new(),
            names: vec!["*.example.org".to_owned()],
            not_before: 0,
            not_after: 0,
            self_signed: false,
            chain_len: 1,
            key: KeyCheck::Matches,
        };
        assert!(info.covers("tickets.example.org"));
        assert!(!info.covers("a.tickets.example.org"));
        assert!(!info.covers("example.org"));
    }

    #[test]
    fn garbage_is_named() {
        assert!(
            inspect(b"hello", b"")
                .expect_err("garbage")
                .contains("no PEM certificate")
        );
    }
}
