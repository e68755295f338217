//! Each server of the harness really starts, answers, and stops.

mod image;
mod servers;
