//! On a real Debian 12 server (the testkit's test host, systemd as PID 1) with the real
//! pretix image: cron, and then the systemd timer, really run `pretix cron` in the container,
//! and `verify` fails before the first run and passes after it, by pretix's own record in Redis.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use pretix_testkit::{Redis, RedisOptions, TestHost, images};

const MARK: &str = ":1:pretix_runperiodic_executed";
const PRETIX_UID: u32 = 15371;

/// The test host with pretix-cron installed, a pretix container of the real image started from
/// it as the guide starts one, and Redis (on this machine) on a socket both see.
struct Server {
    host: TestHost,
    redis: Redis,
    container: String,
}

impl Server {
    fn start() -> Server {
        let host = TestHost::boot().unwrap_or_else(|error| panic!("boot the test host: {error}"));
        let image = images::real_image().unwrap_or_else(|error| panic!("build the real image: {error}"));
        let shared = host.shared_dir().to_path_buf();
        let redis_dir = shared.join("redis");
        let config_dir = shared.join("config");
        let data_dir = shared.join("data");
        for dir in [&redis_dir, &config_dir, &data_dir] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        std::fs::set_permissions(&redis_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let redis_conf = redis_dir.join("redis.conf");
        std::fs::write(&redis_conf, "port 0\nunixsocketperm 777\ndatabases 16\n").expect("write redis.conf");
        let redis = Redis::start_with_config_file(
            &redis_conf,
            RedisOptions {
                socket: redis_dir.join("redis.sock"),
                dir: redis_dir.clone(),
                as_redis_user: false,
                port: Some(0),
            },
        );
        // pretix as the guide configures it, but without a database: runperiodic sets its mark
        // before its tasks, which then fail on the missing tables and are reported, not fatal.
        let config = config_dir.join("pretix.cfg");
        std::fs::write(
            &config,
            format!(
                "[pretix]\ndatadir=/data\necb_rates=off\n\n[redis]\nlocation=unix://{}?db=0\n",
                redis_dir.join("redis.sock").display()
            ),
        )
        .expect("write pretix.cfg");
        for path in [&config_dir, &config, &data_dir] {
            std::os::unix::fs::chown(path, Some(PRETIX_UID), Some(PRETIX_UID)).expect("chown");
        }
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");

        let container = format!("{}-pretix.service", host.name());
        let started = host
            .exec(&[
                "docker",
                "run",
                "-d",
                "--name",
                &container,
                "-e",
                "AUTOMIGRATE=skip",
                "-v",
                &format!("{}:/data", data_dir.display()),
                "-v",
                &format!("{}:/etc/pretix", config_dir.display()),
                "-v",
                &format!("{0}:{0}", redis_dir.display()),
                &image,
                "web",
            ])
            .expect("docker run");
        assert!(started.success(), "{}", started.describe());
        host.install_binaries(&[PathBuf::from(env!("CARGO_BIN_EXE_pretix-cron"))])
            .expect("install pretix-cron");
        Server { host, redis, container }
    }

    /// The site document, written to /root/site.json on the test host.
    fn write_site(&self, cron: Value) {
        let redis_dir = self.host.shared_dir().join("redis");
        let site = json!({
            "container": {"unit": self.container, "volumes": [format!("{0}:{0}", redis_dir.display())]},
            "config": {"redis": {"location": format!("unix://{}?db=0", redis_dir.join("redis.sock").display())}},
            "cron": cron,
        });
        self.host
            .write_file("/root/site.json", site.to_string().as_bytes(), 0o600)
            .expect("write site.json");
    }

    /// Runs `pretix-cron <verb>` on the test host as root; the document it printed and its exit code.
    fn tool(&self, verb: &str) -> (i64, Value, String) {
        let output = self
            .host
            .sh(&format!("pretix-cron {verb} < /root/site.json"))
            .expect("run pretix-cron");
        let document = serde_json::from_str(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "pretix-cron {verb} printed no document ({error}): {}",
                output.describe()
            )
        });
        (output.code, document, output.stderr)
    }

    fn redis(&self, args: &[&str]) -> redis::Value {
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Unix(
            self.redis.socket_path().to_path_buf(),
        ))
        .expect("connection info");
        let mut connection = redis::Client::open(info)
            .and_then(|client| client.get_connection())
            .expect("connect to Redis");
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query(&mut connection).expect("redis command")
    }

    /// Polls `verify` until its "last run" item is ok; the last verify's output.
    fn wait_for_a_run(&self, what: &str, timeout: Duration) -> (i64, Value, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, document, stderr) = self.tool("verify");
            if item(&document, "last run").0 == "ok" || Instant::now() > deadline {
                assert_eq!(
                    item(&document, "last run").0,
                    "ok",
                    "{what} did not run pretix cron within {timeout:?}: {stderr}\ncron: {}\ntimer: {}",
                    self.host.journal("cron.service"),
                    self.host.journal("pretix-cron.service")
                );
                return (code, document, stderr);
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }
}

/// Status and message of a verify item.
fn item(document: &Value, name: &str) -> (String, String) {
    let results = document["results"].as_array().cloned().unwrap_or_default();
    let checks = results
        .last()
        .and_then(|result| result["checks"].as_array().cloned())
        .unwrap_or_default();
    checks
        .iter()
        .find(|check| check["name"] == name)
        .map(|check| {
            (
                check["status"].as_str().unwrap_or_default().to_owned(),
                check["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .unwrap_or_else(|| (String::new(), format!("no {name} item in {document}")))
}

/// Waits until the minute is between its 15th and 45th second: a run started at the minute has
/// set pretix's mark by then (Django starts in a few seconds), and nothing written now runs
/// before the next minute (cron reads a new file at the minute).
fn away_from_the_minute() {
    let seconds = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() % 60)
            .unwrap_or_default()
    };
    while !(15..=45).contains(&seconds()) {
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn cron_file_on(host: &TestHost) -> Option<String> {
    host.exec(&["cat", "/etc/cron.d/pretix"])
        .ok()
        .filter(|output| output.success())
        .map(|output| output.stdout)
}

#[test]
fn cron_and_then_the_timer_run_pretix_cron_in_the_real_image_and_verify_sees_it() {
    let server = Server::start();
    let every_minute = json!({"schedule": "* * * * *"});
    server.write_site(every_minute.clone());

    // Before anything: no job, no record.
    let (code, document, _) = server.tool("verify");
    assert_eq!(code, 1);
    assert_eq!(item(&document, "cron file").0, "failure");
    assert_eq!(item(&document, "last run").0, "failure");

    // The cron file, and verify before cron's first run: installed and would run, never ran.
    away_from_the_minute();
    let (code, _, stderr) = server.tool("apply");
    assert_eq!(code, 0, "{stderr}");
    assert!(cron_file_on(&server.host).is_some_and(|text| text.contains(&format!(
        "* * * * * root /usr/bin/docker exec {} pretix cron",
        server.container
    ))));
    let (code, document_before, stderr) = server.tool("verify");
    assert_eq!(code, 1, "{stderr}");
    for name in ["cron file", "cron daemon", "container", "docker client"] {
        let (status, message) = item(&document_before, name);
        assert_eq!(status, "ok", "{name}: {message}");
    }
    let (status, message) = item(&document_before, "last run");
    assert_eq!(status, "failure", "{message}");
    assert!(message.contains("no record of pretix cron"), "{message}");

    // cron runs the job in the real image within a minute; verify sees it.
    let (code, document, stderr) = server.wait_for_a_run("cron", Duration::from_secs(150));
    assert_eq!(code, 0, "{stderr}");
    assert!(item(&document, "last run").1.contains("pretix cron last ran"));

    // `run`: pretix cron now, through the Docker API, exit 0.
    let (code, document, stderr) = server.tool("run");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        document["results"][document["results"].as_array().map_or(0, Vec::len) - 1]["msg"]
            .as_str()
            .is_some_and(|msg| msg.contains("exited 0"))
    );

    // The timer instead: systemd-analyze verify on the server, enabled, the cron file gone; then
    // pretix's mark is cleared, so only a run the timer starts can set it again.
    let mut timer = every_minute;
    timer["scheduler"] = json!("timer");
    server.write_site(timer);
    away_from_the_minute();
    let (code, _, stderr) = server.tool("apply");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("systemctl enable --now pretix-cron.timer"), "{stderr}");
    assert!(
        cron_file_on(&server.host).is_none(),
        "the cron file must go once the timer runs"
    );
    let enabled = server
        .host
        .exec(&["systemctl", "is-enabled", "pretix-cron.timer"])
        .expect("is-enabled");
    assert_eq!(enabled.stdout.trim(), "enabled", "{}", enabled.describe());
    // A run cron started before its file went may still be starting up (on a loaded machine
    // Django takes a while) and would set the mark after the DEL: wait until none is left.
    let deadline = Instant::now() + Duration::from_secs(120);
    while server
        .host
        .exec(&["pgrep", "-f", "docker exec .* pretix cron"])
        .is_ok_and(|output| output.success())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_secs(1));
    }
    server.redis(&["DEL", MARK]);
    let (_, before_timer, _) = server.tool("verify");
    assert_eq!(
        item(&before_timer, "timer").0,
        "ok",
        "{}",
        item(&before_timer, "timer").1
    );
    assert_eq!(
        item(&before_timer, "last run").0,
        "failure",
        "{}",
        item(&before_timer, "last run").1
    );

    let (code, _, stderr) = server.wait_for_a_run("the timer", Duration::from_secs(150));
    assert_eq!(code, 0, "{stderr}");
    // pretix sets its mark when the run starts: wait for the service to finish, then ask again.
    let deadline = Instant::now() + Duration::from_secs(120);
    while server
        .host
        .exec(&["systemctl", "is-active", "pretix-cron.service"])
        .is_ok_and(|output| output.stdout.trim() == "activating")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_secs(1));
    }
    let (code, document, stderr) = server.tool("verify");
    assert_eq!(code, 0, "{stderr}");
    let (status, message) = item(&document, "last timer run");
    assert_eq!(
        status,
        "ok",
        "{message}\n{}\n{:?}\ncron: {}",
        server.host.journal("pretix-cron.service"),
        server
            .host
            .exec(&["systemctl", "show", "pretix-cron.service", "pretix-cron.timer"]),
        server.host.journal("cron.service")
    );
    assert!(message.contains("last ended well"), "{message}");
    let journal = server.host.journal("pretix-cron.service");
    assert!(journal.contains("pretix-cron.service"), "{journal}");

    // A second apply changes nothing on the real server either.
    let (code, document, stderr) = server.tool("apply");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        document["results"][document["results"].as_array().map_or(0, Vec::len) - 1]["changed"],
        false,
        "{stderr}"
    );
}
