//! A CA and a node certificate made at test time (rcgen), written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// PEM files in a directory: `ca.pem`, `node.pem` + `node.key` (signed by the CA, valid for
/// 127.0.0.1 and localhost, usable as server and client certificate), and `other-ca.pem`, a CA
/// that signed nothing here.
pub struct TestPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("CA key");
    (params.self_signed(&key).expect("self-signed CA"), key)
}

impl TestPki {
    pub fn generate(dir: &Path) -> TestPki {
        let (ca_cert, ca_key) = ca("tenure test CA");
        let (other_cert, _) = ca("some other CA");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("node params");
        params.distinguished_name.push(DnType::CommonName, "tenure node");
        let key = KeyPair::generate().expect("node key");
        let cert = params.signed_by(&key, &ca_cert, &ca_key).expect("node certificate");
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node.key"),
            other_ca: dir.join("other-ca.pem"),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).expect("write");
        std::fs::write(&pki.cert, cert.pem()).expect("write");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write");
        std::fs::write(&pki.other_ca, other_cert.pem()).expect("write");
        pki
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).expect("read CA")
    }
}
