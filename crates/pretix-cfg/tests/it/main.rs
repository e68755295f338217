//! pretix-cfg against real files, the real binary, real pretix from PyPI and real ansible-playbook.

mod ansible;
mod apply;
mod import;
mod parser_agrees;
mod pretix_agrees;
mod real_pretix;
mod rules;
mod support;
