//! The systemd drop-in the guide makes with `systemctl edit redis-server`. Pure.

use pretix_site::sections::RedisSocketMode;

/// The drop-in's text.
///
/// `RuntimeDirectoryPreserve=yes` keeps `/run/redis` when redis-server stops: the container
/// bind-mounts that directory, and a directory that systemd removed and made anew on a restart
/// would leave the container looking at the old, empty one, without the socket.
///
/// In tcp mode Redis binds the docker host address, which exists only once Docker has made its
/// bridge; at boot Redis would fail to bind it and give up. `After=docker.service` orders the
/// start (it pulls nothing in, and means nothing on a host without Docker).
pub fn dropin_text(mode: RedisSocketMode) -> String {
    let mut text = String::from(
        "# Written by pretix-redis. Keeps /run/redis, which the pretix container mounts, when redis-server\n\
         # restarts, as pretix's Docker guide asks (`systemctl edit redis-server`). Your own changes belong in\n\
         # override.conf next to this file; this file is rewritten on every run.\n",
    );
    if mode == RedisSocketMode::Tcp {
        text.push_str(
            "\n# tcp mode: Redis binds the docker host address, which exists once Docker has started.\n\
             [Unit]\nAfter=docker.service\n",
        );
    }
    text.push_str("\n[Service]\nRuntimeDirectoryPreserve=yes\n");
    text
}

/// A drop-in file that sets `RuntimeDirectoryPreserve` to something else, when it is read after
/// ours (systemd reads drop-ins in file-name order, the last setting wins).
pub fn overriding_preserve(our_name: &str, other_name: &str, other_text: &str) -> Option<String> {
    if other_name <= our_name {
        return None;
    }
    other_text.lines().rev().find_map(|line| {
        let (key, value) = line.trim().split_once('=')?;
        (key.trim() == "RuntimeDirectoryPreserve" && value.trim() != "yes").then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_modes_only_preserve_the_runtime_directory() {
        let text = dropin_text(RedisSocketMode::World);
        assert_eq!(text, dropin_text(RedisSocketMode::Group));
        assert!(text.ends_with("\n[Service]\nRuntimeDirectoryPreserve=yes\n"));
        assert!(!text.contains("[Unit]"));
    }

    #[test]
    fn tcp_mode_starts_after_docker() {
        assert!(dropin_text(RedisSocketMode::Tcp).contains("[Unit]\nAfter=docker.service\n"));
    }

    #[test]
    fn a_later_drop_in_can_undo_ours() {
        assert_eq!(
            overriding_preserve("pretix.conf", "zz.conf", "[Service]\nRuntimeDirectoryPreserve=no\n"),
            Some("no".to_owned())
        );
        assert_eq!(
            overriding_preserve(
                "pretix.conf",
                "override.conf",
                "[Service]\nRuntimeDirectoryPreserve=no\n"
            ),
            None
        );
        assert_eq!(
            overriding_preserve("pretix.conf", "zz.conf", "[Service]\nUMask=007\n"),
            None
        );
    }
}
