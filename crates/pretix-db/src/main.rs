fn main() {
    pretix_site::run::exit_with(pretix_db::main());
}
