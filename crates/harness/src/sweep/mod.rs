//! `dpft sweep`: YAML grids of training runs ([`spec`]) kept in a run store ([`store`]) and run by a
//! backend: child processes on this machine ([`local`]) or a Slurm job array ([`slurm`]).

pub mod local;
pub mod selection;
pub mod slurm;
pub mod spec;
pub mod store;
