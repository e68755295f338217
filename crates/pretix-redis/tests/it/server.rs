//! The Redis adapter against real servers: the `databases` fallback and the error kinds.

use std::path::Path;

use pretix_redis::server::{Databases, ServerError, Target};
use pretix_site::Secret;

use crate::support::{Redis, RedisOptions};

fn start(dir: &Path, config: &str) -> (Redis, Target) {
    let file = dir.join("redis.conf");
    std::fs::write(&file, config).expect("write");
    let socket = dir.join("redis.sock");
    let redis = Redis::start_with_config_file(
        &file,
        RedisOptions {
            socket: socket.clone(),
            dir: dir.to_path_buf(),
            as_redis_user: false,
            port: Some(0),
        },
    );
    (redis, Target::socket(socket.clone(), &socket, None))
}

#[test]
fn without_config_the_databases_are_probed_with_select() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_redis, target) = start(dir.path(), "rename-command CONFIG \"\"\ndatabases 3\n");
    assert_eq!(target.databases(), Ok(Databases::AtLeastThree));

    let dir = tempfile::tempdir().expect("tempdir");
    let (_redis, target) = start(dir.path(), "rename-command CONFIG \"\"\ndatabases 2\n");
    assert_eq!(target.databases(), Ok(Databases::FewerThanThree));
    assert!(!Databases::FewerThanThree.enough());

    let dir = tempfile::tempdir().expect("tempdir");
    let (_redis, target) = start(dir.path(), "databases 2\n");
    assert_eq!(target.databases(), Ok(Databases::Count(2)));
}

#[test]
fn a_missing_or_wrong_password_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_redis, without) = start(dir.path(), "requirepass the-right-password\n");
    assert_eq!(without.ping(), Err(ServerError::PasswordRequired));
    let socket = dir.path().join("redis.sock");
    let wrong = Target::socket(socket.clone(), &socket, Some(Secret::new("a-wrong-password")));
    assert_eq!(wrong.ping(), Err(ServerError::AuthenticationFailed));
    let right = Target::socket(socket.clone(), &socket, Some(Secret::new("the-right-password")));
    assert_eq!(right.ping(), Ok(()));
    assert_eq!(right.to_string(), socket.display().to_string());
}
