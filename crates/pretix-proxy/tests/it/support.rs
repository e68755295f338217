//! A real nginx from the testkit whose configuration includes a temp `sites-enabled`, a
//! certificate made here, an upstream that echoes the request it got, and the binary driven as
//! a pipeline drives it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

pub use pretix_testkit::ToolRun as Run;
use pretix_testkit::{Nginx, free_port};

pub const BIN: &str = env!("CARGO_BIN_EXE_pretix-proxy");
pub const SERVER_NAME: &str = "tickets.example.test";

/// Runs the binary with `document` on stdin.
pub fn run(args: &[&str], document: &Value) -> Run {
    run_with(
        Command::new(BIN)
            .args(args)
            .env_remove(pretix_site::service::RECORD_ENV),
        document,
    )
}

pub fn run_with(command: &mut Command, document: &Value) -> Run {
    pretix_testkit::run_tool(command, document)
}

/// A temp dir others can traverse (nginx's workers run as nobody).
pub fn open_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A certificate for `names` issued by a throwaway CA, valid for `days` from yesterday, as a
/// full chain (leaf, then the CA), and its key, PEM.
pub fn certificate_for_days(names: &[&str], days: i64) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pretix-proxy test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>()).expect("params");
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_before = yesterday;
    params.not_after = yesterday + time::Duration::days(days + 1);
    let cert = params.signed_by(&key, &issuer).expect("sign");
    (format!("{}{}", cert.pem(), ca_cert.pem()), key.serialize_pem())
}

/// A certificate for `names`, valid for 90 days.
pub fn certificate(names: &[&str]) -> (String, String) {
    certificate_for_days(names, 90)
}

/// A host for the site: a real nginx whose main configuration includes our `sites-enabled`,
/// the site's dirs, the certificate files and two free ports.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub nginx: Nginx,
    pub http_port: u16,
    pub https_port: u16,
}

impl Host {
    pub fn new() -> Host {
        let dir = open_tempdir("pretix-proxy-it.");
        for sub in ["sites-available", "sites-enabled", "tls", "acme"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::set_permissions(dir.path().join("acme"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let (cert, key) = certificate(&[SERVER_NAME]);
        std::fs::write(dir.path().join("tls/cert.pem"), cert).expect("cert");
        std::fs::write(dir.path().join("tls/key.pem"), key).expect("key");
        std::fs::set_permissions(dir.path().join("tls/key.pem"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        let include = format!(
            "server {{ listen 127.0.0.1:{{PORT}}; location / {{ return 200 'placeholder'; }} }}\n\
             include {}/sites-enabled/*;",
            dir.path().display()
        );
        let nginx = Nginx::start_with_site(&include);
        Host {
            dir,
            nginx,
            http_port: free_port(),
            https_port: free_port(),
        }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    pub fn site_file(&self) -> PathBuf {
        self.path("sites-available/pretix")
    }

    pub fn url(&self) -> String {
        format!("https://{SERVER_NAME}:{}", self.https_port)
    }

    /// The document for this host, with `proxy` fields merged over the defaults here.
    pub fn document(&self, upstream_port: u16, proxy: Value) -> Value {
        let mut section = json!({
            "upstream": format!("127.0.0.1:{upstream_port}"),
            "certificate": self.path("tls/cert.pem"),
            "certificate_key": self.path("tls/key.pem"),
            "acme_webroot": self.path("acme"),
            "sites_available": self.path("sites-available"),
            "sites_enabled": self.path("sites-enabled"),
            "nginx_conf": self.nginx.prefix().join("nginx.conf"),
            "nginx_prefix": self.nginx.prefix(),
            "listen_address": "127.0.0.1",
            "ipv6": false,
            "http_port": self.http_port,
            "https_port": self.https_port,
            "reload": "signal",
        });
        if let (Some(section), Value::Object(extra)) = (section.as_object_mut(), proxy) {
            section.extend(extra);
        }
        json!({
            "config": {"pretix": {"url": self.url()}, "mail": {"from": "tickets@example.test"}},
            "paths": {"lock_file": self.path("lock/lock")},
            "proxy": section,
        })
    }

    /// How often nginx has been told to reload (its log has one SIGHUP line each time).
    pub fn reloads(&self) -> usize {
        std::fs::read_to_string(self.nginx.prefix().join("error.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("(SIGHUP) received"))
            .count()
    }

    /// The reload count once nginx has logged `expected` reloads (or 30 s passed), and a second
    /// later: the master logs a signal when it handles it, a moment after `nginx -s reload`.
    pub fn reloads_after(&self, expected: usize) -> usize {
        // Generous: on a loaded machine nginx's master may take seconds to get to the signal.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.reloads() < expected && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        std::thread::sleep(Duration::from_millis(1000));
        self.reloads()
    }

    /// Waits until the https port answers (a reload takes effect a moment after the signal).
    pub fn wait_for_https(&self) {
        pretix_testkit::wait_until(
            "the site's https port answering",
            Duration::from_secs(30),
            || pretix_testkit::port_open(self.https_port),
            || std::fs::read_to_string(self.nginx.prefix().join("error.log")).unwrap_or_default(),
        );
    }
}

/// An upstream that answers every request with 200 and the request's head as the body.
pub struct Echo {
    pub port: u16,
}

impl Echo {
    pub fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                    head.len()
                );
            }
        });
        Echo { port }
    }
}

pub fn mtime(path: &Path) -> (i64, i64) {
    let metadata = std::fs::metadata(path).expect("metadata");
    (metadata.mtime(), metadata.mtime_nsec())
}

pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let metadata = std::fs::symlink_metadata(path).expect("metadata");
    (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777)
}

/// A staged Debian root for `--root` runs: /etc/nginx/sites-available and sites-enabled, and a
/// certificate for the server name at the default paths.
pub struct Stage {
    pub dir: tempfile::TempDir,
}

impl Stage {
    pub fn new() -> Stage {
        let dir = open_tempdir("pretix-proxy-root.");
        for sub in [
            "etc/nginx/sites-available",
            "etc/nginx/sites-enabled",
            "etc/ssl/certs",
            "etc/ssl/private",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let (cert, key) = certificate(&[SERVER_NAME]);
        std::fs::write(dir.path().join(format!("etc/ssl/certs/{SERVER_NAME}.pem")), cert).expect("cert");
        let key_path = dir.path().join(format!("etc/ssl/private/{SERVER_NAME}.key"));
        std::fs::write(&key_path, key).expect("key");
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Stage { dir }
    }

    pub fn root_arg(&self) -> String {
        self.dir.path().display().to_string()
    }

    pub fn path(&self, host_path: &str) -> PathBuf {
        self.dir.path().join(host_path.trim_start_matches('/'))
    }

    /// The guide's document: the URL and the mail sender, nothing else.
    pub fn document(&self) -> Value {
        json!({
            "config": {"pretix": {"url": format!("https://{SERVER_NAME}")}, "mail": {"from": "tickets@example.test"}},
        })
    }
}

/// The document with `proxy.<key>` set.
pub fn with_proxy(mut document: Value, key: &str, value: Value) -> Value {
    if document.get("proxy").is_none() {
        document["proxy"] = json!({});
    }
    document["proxy"][key] = value;
    document
}
