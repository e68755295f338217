//! Which plugins pretix really loaded: a script for `pretix shell -c` in a throwaway container of
//! the image (the image's own entrypoint, `AUTOMIGRATE=skip`, so nothing touches a database),
//! and the comparison with the list in the document.
//!
//! pretix loads every `pretix.plugin` entry point as a Django app unless `plugins_exclude` names
//! it, and exits at start-up when a plugin's `compatibility` does not match the installed pretix:
//! asking Django's app registry after `django.setup()` sees exactly what the web server will.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The line the script prints its answer on; everything else in the output is noise (Django
/// announces its automatic shell imports, plugins may log).
pub const MARKER: &str = "PRETIX-TOOLKIT-PLUGINS ";

/// The Python the container runs; `names` are validated, normalized distribution names.
pub fn script(names: &[String]) -> String {
    let wanted = serde_json::to_string(names).unwrap_or_else(|_| "[]".to_owned());
    format!(
        r#"import json, re
from importlib import metadata
from django.apps import apps
def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()
wanted = {wanted}
loaded = sorted(app.name for app in apps.get_app_configs() if hasattr(app, "PretixPluginMeta"))
entry_points = {{}}
for entry_point in metadata.entry_points(group="pretix.plugin"):
    name = normalize(entry_point.dist.name) if entry_point.dist else ""
    entry_points.setdefault(name, []).append(entry_point.module)
installed = {{}}
for name in wanted:
    try:
        installed[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        installed[name] = None
print("{MARKER}" + json.dumps({{"pretix": metadata.version("pretix"), "loaded": loaded, "entry_points": entry_points, "installed": installed}}))
"#
    )
}

/// The script's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Answer {
    /// The pretix version in the image.
    pub pretix: String,
    /// Every Django app pretix loaded as a plugin (pretix's own included).
    pub loaded: Vec<String>,
    /// Distribution name (normalized) → the plugin modules it declares.
    pub entry_points: BTreeMap<String, Vec<String>>,
    /// Distribution name → installed version, for the names asked about.
    #[serde(default)]
    pub installed: BTreeMap<String, Option<String>>,
}

/// Finds the answer in the container's output; `None` when pretix never got to run the script
/// (the output then says why: an incompatible plugin, an import error).
pub fn parse(output: &str) -> Option<Answer> {
    output
        .lines()
        .rev()
        .find_map(|line| line.trim_end().strip_prefix(MARKER))
        .and_then(|json| serde_json::from_str(json).ok())
}

/// What pretix made of one listed plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Loaded { name: String, modules: Vec<String> },
    NotInstalled { name: String },
    NoPlugin { name: String, version: Option<String> },
    NotLoaded { name: String, modules: Vec<String> },
}

impl Finding {
    pub fn is_loaded(&self) -> bool {
        matches!(self, Finding::Loaded { .. })
    }

    pub fn message(&self) -> String {
        match self {
            Finding::Loaded { name, modules } => format!("{name}: pretix loaded {}", modules.join(", ")),
            Finding::NotInstalled { name } => format!("{name} is not installed in the image"),
            Finding::NoPlugin { name, version } => format!(
                "{name} {} is installed but declares no pretix plugin (no pretix.plugin entry point): is it the \
                 right package?",
                version.as_deref().unwrap_or("")
            )
            .replace("  ", " "),
            Finding::NotLoaded { name, modules } => format!(
                "{name} declares {} but pretix did not load it: check [pretix] plugins_exclude",
                modules.join(", ")
            ),
        }
    }
}

/// One finding per listed name, in the list's order.
pub fn compare(names: &[String], answer: &Answer) -> Vec<Finding> {
    names
        .iter()
        .map(|name| {
            let modules = answer.entry_points.get(name).cloned().unwrap_or_default();
            let version = answer.installed.get(name).cloned().flatten();
            if modules.is_empty() {
                if version.is_some() {
                    Finding::NoPlugin {
                        name: name.clone(),
                        version,
                    }
                } else {
                    Finding::NotInstalled { name: name.clone() }
                }
            } else if modules.iter().all(|module| answer.loaded.contains(module)) {
                Finding::Loaded {
                    name: name.clone(),
                    modules,
                }
            } else {
                Finding::NotLoaded {
                    name: name.clone(),
                    modules,
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_found_among_noise_and_compared() {
        let output = "122 objects imported automatically (use -v 2 for details).\n\
            PRETIX-TOOLKIT-PLUGINS {\"pretix\": \"2026.8.0\", \"loaded\": [\"pretix.plugins.sendmail\", \"pretix_pages\"], \
            \"entry_points\": {\"pretix-pages\": [\"pretix_pages\"], \"pretix-x\": [\"pretix_x\"]}, \
            \"installed\": {\"pretix-pages\": \"1.6.4\", \"requests\": \"2.0\", \"pretix-x\": \"1\", \"gone\": null}}\n";
        let answer = parse(output).unwrap_or_else(|| panic!("no answer in {output}"));
        assert_eq!(answer.pretix, "2026.8.0");
        let names: Vec<String> = ["pretix-pages", "requests", "pretix-x", "gone"]
            .map(str::to_owned)
            .to_vec();
        let findings = compare(&names, &answer);
        assert!(findings[0].is_loaded());
        assert!(matches!(findings[1], Finding::NoPlugin { .. }));
        assert!(matches!(findings[2], Finding::NotLoaded { .. }));
        assert!(matches!(findings[3], Finding::NotInstalled { .. }));
    }

    #[test]
    fn no_marker_no_answer() {
        assert_eq!(parse("Incompatible plugins found!\n"), None);
    }

    #[test]
    fn the_script_embeds_the_names_as_a_python_list() {
        assert!(script(&["pretix-pages".to_owned()]).contains("wanted = [\"pretix-pages\"]"));
    }
}
