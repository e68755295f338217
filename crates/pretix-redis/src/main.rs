fn main() {
    pretix_site::run::exit_with(pretix_site::run::main::<pretix_redis::RedisTool>());
}
