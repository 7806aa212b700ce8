//! `callbox serve --tls-cert/--tls-key` as a real process: the files it refuses at start (one line, exit 1, nothing
//! touched), HTTPS with a certificate made here, and SIGHUP reloading it (or keeping it when the new files are bad).

use crate::served::serve;
use crate::{callbox, code, stderr};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

struct TestCa(CertifiedIssuer<'static, KeyPair>);

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// Writes a certificate for 127.0.0.1 signed by this CA, and its key, as `cert.pem` and `key.pem` in `dir`.
    fn write_pair(&self, dir: &Path) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &self.0).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    }

    /// A blocking-free HTTPS client trusting only this CA.
    fn client(&self) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.0.der().clone()).unwrap();
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        reqwest::Client::builder().use_preconfigured_tls(config).timeout(Duration::from_secs(5)).build().unwrap()
    }
}

fn serve_args<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data", data];
    args.extend_from_slice(extra);
    args
}

#[test]
fn tls_files_it_cannot_use_stop_serve_with_one_line_before_the_data_directory_is_made() {
    let dir = TempDir::new().unwrap();
    TestCa::new("Callbox test CA").write_pair(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").unwrap();
    let garbage = garbage.to_str().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();

    for (args, expected) in [
        (vec!["--tls-key", key], "error: callbox serve: tls: tls.key is set but tls.cert is not"),
        (vec!["--tls-cert", cert], "error: callbox serve: tls: tls.cert is set but tls.key is not"),
        (vec!["--tls-cert", garbage, "--tls-key", key], "holds no PEM certificate"),
        (vec!["--tls-cert", cert, "--tls-key", garbage], "holds no PEM private key"),
        (vec!["--tls-cert", cert, "--tls-key", "/nonexistent/key.pem"], "cannot read the TLS key /nonexistent/key.pem"),
    ] {
        let output = callbox(&serve_args(data, &args), None);
        assert_eq!(code(&output), 1, "{args:?}");
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "one line for {args:?}: {message}");
        assert_eq!(message.matches(expected.trim_start_matches("error: callbox serve: tls: ")).count(), 1, "{message}");
        assert!(message.starts_with("error: callbox serve: tls: ") && message.contains(expected), "{message}");
        assert!(output.stdout.is_empty(), "no listening line");
        assert!(!Path::new(data).exists(), "the data directory is not made for {args:?}");
    }

    // A realtime host given as a URL is refused the same way.
    let output = Command::new(env!("CARGO_BIN_EXE_callbox"))
        .args(serve_args(data, &[]))
        .env("CALLBOX_LEGACY__REALTIME_HOST", "https://rt.example.com")
        .env_remove("CALLBOX_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).starts_with("error: callbox serve: legacy.realtime_host must be host or host:port"));
    assert!(!Path::new(data).exists());

    // The same from the environment (CALLBOX_TLS__CERT alone).
    let output = Command::new(env!("CARGO_BIN_EXE_callbox"))
        .args(serve_args(data, &[]))
        .env("CALLBOX_TLS__CERT", cert)
        .env_remove("CALLBOX_TLS__KEY")
        .env_remove("CALLBOX_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("tls.cert is set but tls.key is not"), "{}", stderr(&output));
}

/// Polls `check` for up to 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < until, "{what} did not happen within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serve_speaks_https_and_reloads_the_certificate_on_sighup() {
    let dir = TempDir::new().unwrap();
    let (first, second) = (TestCa::new("First CA"), TestCa::new("Second CA"));
    first.write_pair(dir.path());
    let log = dir.path().join("stderr.log");
    let stderr_file = std::fs::File::create(&log).unwrap();
    let served = serve(&dir.path().join("data"), |command| {
        command
            .arg("--tls-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.path().join("key.pem"))
            .env("RUST_LOG", "info")
            .stderr(stderr_file);
    });
    assert!(served.url.starts_with("https://127.0.0.1:"), "{}", served.url);
    let timestamp = format!("{}/v1/timestamp", served.url);
    let status = first.client().get(&timestamp).send().await.unwrap().status();
    assert_eq!(status, 200);
    assert!(second.client().get(&timestamp).send().await.is_err(), "not yet the second CA's certificate");

    let hangup = |pid: u32| {
        let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
        assert!(status.success());
    };
    second.write_pair(dir.path());
    hangup(served.child.id());
    eventually("serving the reloaded certificate", async || {
        second.client().get(&timestamp).send().await.is_ok_and(|response| response.status() == 200)
    })
    .await;
    assert!(first.client().get(&timestamp).send().await.is_err(), "the first certificate is gone");

    // Bad files: a warning, and the certificate in force stays.
    std::fs::write(dir.path().join("cert.pem"), "truncated").unwrap();
    hangup(served.child.id());
    eventually("the warning about the bad files", async || {
        std::fs::read_to_string(&log).unwrap().contains("SIGHUP: kept the TLS certificate in use")
    })
    .await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("reloaded the TLS certificate and key"), "{logged}");
    assert!(logged.contains("holds no PEM certificate"), "{logged}");
    let status = second.client().get(&timestamp).send().await.unwrap().status();
    assert_eq!(status, 200, "still serving after a bad reload");
}
