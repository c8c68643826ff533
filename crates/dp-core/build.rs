//! Bakes libtorch's library folder into this crate's binaries and tests as an rpath (see crates/tch-rpath).
fn main() {
    tch_rpath::emit();
}
