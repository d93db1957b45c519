//! quiver-transforms integration tests: one binary.

mod errors;
mod parity;
mod support;
mod vader_fixture;
mod values;
