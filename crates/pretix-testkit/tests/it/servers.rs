use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use pretix_testkit::{Nginx, Postgres, PostgresOptions, Redis, Registry, http_get, port_open};

#[test]
fn postgres_starts_answers_stops_and_cleans_up() {
    let cluster = Postgres::start();
    let mut client = cluster.superuser();
    let row = client
        .query_one("SELECT 1::int4, current_setting('server_encoding')", &[])
        .expect("query");
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, String>(1), "UTF8");
    assert!(cluster.data_dir().join("pg_hba.conf").exists());
    assert!(
        std::fs::read_to_string(cluster.data_dir().join("postgresql.conf"))
            .expect("conf")
            .contains("listen_addresses = 'localhost'")
    );
    drop(client);
    cluster.stop();
    assert!(
        postgres::Client::connect(&cluster.superuser_conn_string(), postgres::NoTls).is_err(),
        "a stopped server answered"
    );
    cluster.start_again();
    cluster
        .superuser()
        .query_one("SELECT 1", &[])
        .expect("query after restart");
    let data_dir = cluster.data_dir();
    drop(cluster);
    assert!(!data_dir.exists(), "the temp cluster was not removed");
}

#[test]
fn postgres_can_be_initialised_with_another_encoding_and_logs_statements() {
    let cluster = Postgres::start_with(PostgresOptions {
        encoding: Some("SQL_ASCII".into()),
        log_statement_all: true,
    });
    let mut client = cluster.superuser();
    let encoding: String = client.query_one("SHOW server_encoding", &[]).expect("query").get(0);
    assert_eq!(encoding, "SQL_ASCII");
    client.batch_execute("SELECT 'a statement to log'").expect("statement");
    drop(client);
    pretix_testkit::wait_until(
        "the statement in the server log",
        std::time::Duration::from_secs(5),
        || cluster.server_log().contains("a statement to log"),
        || cluster.server_log(),
    );
}

fn ping(socket: &std::path::Path) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect to the redis socket");
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").expect("send PING");
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).expect("read the reply");
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn redis_starts_answers_on_its_socket_and_stops() {
    let mut redis = Redis::start("700");
    assert_eq!(ping(redis.socket_path()), "+PONG\r\n");
    let mode = std::fs::metadata(redis.socket_path())
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    let socket = redis.socket_path().to_path_buf();
    redis.stop();
    assert!(UnixStream::connect(&socket).is_err(), "a stopped redis answered");
}

#[test]
fn nginx_starts_answers_and_stops() {
    let mut nginx = Nginx::start();
    let (status, body) = http_get(nginx.port(), "/").expect("GET /");
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert!(
        nginx.prefix().join("error.log").exists(),
        "nginx logs inside its prefix"
    );
    let port = nginx.port();
    nginx.stop();
    assert!(!port_open(port), "a stopped nginx still listens");
}

#[test]
fn registry_starts_and_answers_the_v2_api() {
    let registry = Registry::start();
    let (status, _) = http_get(registry.port(), "/v2/").expect("GET /v2/");
    assert_eq!(status, 200);
    let port = registry.port();
    drop(registry);
    pretix_testkit::wait_until(
        "the registry gone",
        std::time::Duration::from_secs(5),
        || !port_open(port),
        String::new,
    );
}
