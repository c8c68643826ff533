//! `dpft sweep`: YAML grids of training runs ([`spec`]) run as child processes with a run store
//! ([`runner`]).

pub mod runner;
pub mod selection;
pub mod spec;
