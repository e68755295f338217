//! Tidy: invariants of the source kept true by reading it (as rust-analyzer's tidy test does).
//! Spawning programs only through `pretix_site::exec` is kept by clippy (`clippy.toml`,
//! `disallowed-methods`); the rest is here.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|name| name == "target" || name == "snapshots")
            {
                continue;
            }
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    rust_files(&repo().join("crates"), &mut found);
    rust_files(&repo().join("xtask"), &mut found);
    found.sort();
    found
}

/// The source files of the programs (not tests, not the test kit).
fn program_files() -> Vec<PathBuf> {
    all_rust_files()
        .into_iter()
        .filter(|path| {
            let text = path.to_string_lossy();
            !text.contains("/tests/") && !text.contains("pretix-testkit")
        })
        .collect()
}

fn shown(path: &Path) -> String {
    path.strip_prefix(repo()).unwrap_or(path).display().to_string()
}

/// Every path field of every section is listed in its `HostPaths` impl, so
/// `validate_host_paths()` checks it (absolute, no `..`, no control characters).
#[test]
fn every_path_field_goes_through_the_shared_validation() {
    let text = std::fs::read_to_string(repo().join("crates/pretix-site/src/sections.rs")).expect("sections.rs");
    let source = text.split("#[cfg(test)]").next().unwrap_or(&text);
    // struct name -> its path fields
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            current = rest.split([' ', '{', '(', '<']).next().map(str::to_owned);
            continue;
        }
        if line.starts_with('}') {
            current = None;
        }
        let Some(name) = &current else { continue };
        let Some(field) = line.trim().strip_prefix("pub ") else {
            continue;
        };
        let Some((field, kind)) = field.split_once(':') else {
            continue;
        };
        if kind.contains("PathBuf") || kind.contains("SecretRef") {
            fields.entry(name.clone()).or_default().push(field.trim().to_owned());
        }
    }
    assert!(fields.len() >= 5, "found too few sections with paths: {fields:?}");
    // impl HostPaths for X { ... } bodies
    let mut impls: BTreeMap<String, String> = BTreeMap::new();
    for chunk in source.split("impl HostPaths for ").skip(1) {
        let name = chunk.split([' ', '{']).next().unwrap_or_default().to_owned();
        let body = chunk.split("\nimpl ").next().unwrap_or(chunk).to_owned();
        impls.insert(name, body);
    }
    let all_impls: String = impls.values().cloned().collect();
    let mut missing = Vec::new();
    for (name, paths) in &fields {
        for field in paths {
            let listed = match impls.get(name) {
                Some(body) => body.contains(&format!("self.{field}")),
                // A struct nested in a section (DatabaseAdmin, LocalPlugin): its owner's impl.
                None => all_impls.contains(&format!(".{field}")),
            };
            if !listed {
                missing.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "path fields not in their section's HostPaths impl (crates/pretix-site/src/sections.rs), so \
         validate_host_paths() does not check them: {missing:?}"
    );
}

/// A tool that reads a section with host paths checks them through the shared check.
#[test]
fn every_tool_checks_the_host_paths_of_its_sections() {
    let mut unchecked = Vec::new();
    for entry in std::fs::read_dir(repo().join("crates")).expect("crates").flatten() {
        let crate_dir = entry.path();
        let name = crate_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if matches!(name.as_str(), "pretix-site" | "pretix-testkit") {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&crate_dir.join("src"), &mut files);
        let text: String = files
            .iter()
            .map(|file| std::fs::read_to_string(file).unwrap_or_default())
            .collect();
        let reads_a_section = text.contains(".section(") || text.contains(".section::<");
        let checks = text.contains("validate_host_paths")
            || text.contains("validate_host_path(")
            || text.contains("paths.validate()");
        if reads_a_section && !checks {
            unchecked.push(name);
        }
    }
    assert!(
        unchecked.is_empty(),
        "these tools read a section but never call validate_host_paths: {unchecked:?}"
    );
}

/// Code comments refer to what is in the repository (and public standards), never to notes
/// outside it that a reader of the repository cannot open.
#[test]
fn no_code_comment_refers_to_documents_outside_the_repository() {
    let outside = [
        "shared/reference",
        "/work/",
        "STYLE.md",
        "HELPERS.md",
        "ansible.md",
        "pretix.md §",
        "issues show",
    ];
    let mut found = Vec::new();
    for file in all_rust_files() {
        let text = std::fs::read_to_string(&file).expect("read");
        for (number, line) in text.lines().enumerate() {
            let Some((_, comment)) = line.split_once("//") else {
                continue;
            };
            if let Some(word) = outside.iter().find(|word| comment.contains(*word)) {
                found.push(format!("{}:{}: {word}", shown(&file), number + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "comments referring to documents outside the repository:\n{}",
        found.join("\n")
    );
}

/// What a sysadmin reads speaks of the host and the tools, never of how they were built.
#[test]
fn no_process_words_in_user_facing_messages() {
    let words = [
        "later issue",
        "an issue",
        "this issue",
        "wave",
        "engineer",
        "the lead",
        "TODO",
        "FIXME",
        "XXX",
    ];
    let mut found = Vec::new();
    for file in program_files() {
        let text = std::fs::read_to_string(&file).expect("read");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or(line);
            // The string literals of the line.
            for (index, literal) in code.split('"').enumerate() {
                if index % 2 == 0 {
                    continue;
                }
                let lower = literal.to_lowercase();
                if let Some(word) = words.iter().find(|word| lower.contains(&word.to_lowercase())) {
                    found.push(format!("{}:{}: {word}: {literal}", shown(&file), number + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "process words in messages:\n{}", found.join("\n"));
}
