//! pretix-cfg as an Ansible binary module, run by the real ansible-playbook (-c local).

use std::process::Command;

use crate::support::{BIN, owner_mode, secret, stage, venv};

const PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  vars:
    site_config:
      pretix: {url: "https://tickets.example.org"}
      mail: {from: "tickets@example.org"}
      database: {backend: postgresql, name: pretix, user: pretix, host: 172.17.0.1,
                 password: {secret_file: "{{ password_file }}"}}
  tasks:
    - name: render pretix.cfg
      pretix_cfg: {root: "{{ stage }}", config: "{{ site_config }}"}
      register: first
    - name: render again
      pretix_cfg: {root: "{{ stage }}", config: "{{ site_config }}"}
      register: second
    - name: plan a change in check and diff mode
      pretix_cfg:
        root: "{{ stage }}"
        config: "{{ site_config | combine({'pretix': {'url': 'https://other.example.org'}}, recursive=True) }}"
      check_mode: true
      diff: true
      register: planned
    - name: a typo fails
      pretix_cfg: {root: "{{ stage }}", config: {mail: {form: "x@example.org"}}}
      register: typo
      ignore_errors: true
    - name: save what the module returned
      copy: {content: "{{ {'first': first, 'second': second, 'planned': planned, 'typo': typo} | to_json }}", dest: "{{ out }}"}
"#;

#[test]
fn real_ansible_playbook_runs_the_binary_module() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(work.path().join("library")).expect("library");
    std::fs::copy(BIN, work.path().join("library/pretix_cfg")).expect("copy module");
    std::fs::write(work.path().join("playbook.yml"), PLAYBOOK).expect("playbook");
    let out = work.path().join("out.json");
    let venv = venv();
    let output = Command::new(venv.join("bin/ansible-playbook"))
        .args(["-i", "localhost,", "-c", "local", "playbook.yml"])
        .arg("-e")
        .arg(format!(
            "stage={} password_file={password} out={} ansible_python_interpreter={}",
            root.path().display(),
            out.display(),
            venv.join("bin/python").display()
        ))
        .env("ANSIBLE_HOME", work.path().join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", work.path().join("local-tmp"))
        .env("ANSIBLE_REMOTE_TMP", work.path().join("remote-tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .current_dir(work.path())
        .output()
        .expect("run ansible-playbook");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "ansible-playbook failed:\n{log}");
    assert!(
        !log.contains("correct horse"),
        "the password reached ansible's output:\n{log}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("out.json")).expect("json");

    assert_eq!(results["first"]["changed"], true, "{}", results["first"]);
    assert_eq!(results["first"]["failed"], false);
    assert!(results["first"]["site"]["results"].is_array());
    let file = root.path().join("etc/pretix/pretix.cfg");
    assert!(
        std::fs::read_to_string(&file)
            .expect("pretix.cfg")
            .contains("url=https://tickets.example.org\n")
    );
    assert_eq!(owner_mode(&file), (15371, 15371, 0o600));

    assert_eq!(results["second"]["changed"], false, "{}", results["second"]);

    assert_eq!(results["planned"]["changed"], true);
    let diff = &results["planned"]["diff"][0];
    let prepared = diff["prepared"].as_str().expect("prepared");
    assert!(prepared.contains("+url=https://other.example.org"), "{diff}");
    assert!(!prepared.contains("correct horse"), "{diff}");
    assert!(
        std::fs::read_to_string(&file)
            .expect("pretix.cfg")
            .contains("url=https://tickets.example.org\n"),
        "check mode wrote"
    );

    assert_eq!(results["typo"]["failed"], true);
    assert!(
        results["typo"]["msg"].as_str().expect("msg").contains("did you mean"),
        "{}",
        results["typo"]
    );
}
