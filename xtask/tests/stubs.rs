//! Every tool's command line is consistent (clap's own `debug_assert`). The later-wave stubs this
//! file also drove are all built now; each tool's own tests cover its verbs.

use pretix_site::run::command;

#[test]
fn command_lines_are_consistent() {
    command::<pretix_unit::UnitTool>().debug_assert();
    command::<pretix_proxy::ProxyTool>().debug_assert();
    command::<pretix_plugin::PluginTool>().debug_assert();
    command::<pretix_cron::CronTool>().debug_assert();
}
