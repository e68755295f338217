//! `ini::parse` reads what Python's `configparser.RawConfigParser` (pretix's parser) reads from a
//! file, on the corners where parsers differ: empty lines inside continued values, comments
//! inside them, Python's notion of whitespace, line endings, delimiters, section names.

use std::process::Command;

use crate::support::venv;

const TEXTS: &[&str] = &[
    "[pretix]\nurl=x\n\n  currency=EUR\n",
    "[a]\nk = v \u{1f}\n",
    "[a]b]\nk=v\n",
    "[a]\nk=v\n  # comment\n  more\n",
    "[a]\r\nk=v\r\n  more\r\n",
    "[a]\rk=v\r  more\r",
    "[a]\nk=\n",
    "[a]\nk:v=w\n",
    "[a]\n  k=v\n",
    "[a]\nk=v\n\n\n",
    "[a]\nk=v\n  \n  x\n",
    "[a]\nK=v\nk=w\n",
    "x=1\n",
    "[a]\nnokey\n",
    "[a]\n=v\n",
    "[a]\nk=v\n[b]\n  indented=1\n",
    "[a]\nk=v\n\tcont\n",
    "[a]\nk=\u{a0}v\u{a0}\n",
    "[a]\nk=v ; not a comment\n",
    "[a]\n; comment\nk=v\n  ; indented comment\n",
    "[a]\nk = a,\n    b,\n\n    c\nj=1\n",
];

const PYTHON: &str = r#"
import configparser, json, sys, tempfile, os
results = []
for text in json.load(sys.stdin):
    with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
        handle.write(text.encode("utf-8"))
    parser = configparser.RawConfigParser()
    try:
        parser.read(handle.name, encoding="utf-8")
        results.append({"entries": [[s, k, v] for s in parser.sections() for k, v in parser.items(s)]})
    except configparser.Error as error:
        results.append({"error": type(error).__name__})
    os.unlink(handle.name)
print(json.dumps(results))
"#;

#[test]
fn the_parser_reads_what_pythons_configparser_reads() {
    let mut child = Command::new(venv().join("bin/python"))
        .args(["-c", PYTHON])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    let input = serde_json::to_vec(TEXTS).expect("json");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &input).expect("write");
    let output = child.wait_with_output().expect("python");
    assert!(output.status.success());
    let python: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(python.len(), TEXTS.len());
    for (text, theirs) in TEXTS.iter().zip(python) {
        match (pretix_cfg::ini::parse(text), theirs.get("entries")) {
            (Ok(ours), Some(entries)) => {
                let ours: Vec<[&str; 3]> = ours.entries().map(|(s, k, v)| [s, k, v]).collect();
                assert_eq!(serde_json::json!(ours), *entries, "{text:?}");
            }
            (Err(_), None) => {}
            (ours, _) => panic!("{text:?}: we read {ours:?}, configparser read {theirs}"),
        }
    }
}
