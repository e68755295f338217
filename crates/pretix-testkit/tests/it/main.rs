//! Each server of the harness really starts, answers, and stops.

mod image;
mod real_image;
mod servers;
mod test_host;
