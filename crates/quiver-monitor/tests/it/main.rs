//! Integration tests of quiver-monitor.

mod quality;
