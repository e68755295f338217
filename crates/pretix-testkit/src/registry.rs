//! Debian's docker-registry (the distribution registry v2) on a free loopback port with temp
//! storage. The Docker daemon treats 127.0.0.0/8 registries as insecure-allowed, so images can
//! be pushed to and pulled from `127.0.0.1:<port>/...` without TLS.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{INSTALL_SCRIPT, find_program, free_port, http_get, wait_until};

/// A running registry; stopped on drop.
pub struct Registry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("pretix-testkit-registry.")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            ),
        )
        .expect("write the registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new(find_program("docker-registry", &[PathBuf::from("/usr/bin")]))
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("start docker-registry: {error} (run {INSTALL_SCRIPT})"));
        let registry = Registry {
            child: Some(child),
            port,
            dir,
        };
        let log_path = registry.dir.path().join("registry.log");
        wait_until(
            "the registry answering /v2/",
            Duration::from_secs(15),
            || http_get(port, "/v2/").is_ok_and(|(status, _)| status == 200),
            || std::fs::read_to_string(&log_path).unwrap_or_default(),
        );
        registry
    }

    /// `127.0.0.1:<port>`, the prefix of image names in this registry.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
