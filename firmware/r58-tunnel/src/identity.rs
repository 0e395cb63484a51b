//! Who is at the other end of a tunnel: the common name of the certificate the box
//! presented, which the fleet's PKI sets to the device id.

use x509_cert::der::asn1::{ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use x509_cert::der::Decode;
use x509_cert::Certificate;

use crate::TunnelError;

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The subject's common name of the DER certificate `der`.
pub fn common_name(der: &[u8]) -> Result<String, TunnelError> {
    let cert = Certificate::from_der(der)
        .map_err(|e| TunnelError::Identity(format!("not a certificate: {e}")))?;
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for attr in rdn.0.iter().filter(|a| a.oid == COMMON_NAME) {
            if let Ok(s) = attr.value.decode_as::<Utf8StringRef<'_>>() {
                return Ok(s.as_str().to_string());
            }
            if let Ok(s) = attr.value.decode_as::<PrintableStringRef<'_>>() {
                return Ok(s.as_str().to_string());
            }
        }
    }
    Err(TunnelError::Identity(
        "the certificate names no common name".into(),
    ))
}
