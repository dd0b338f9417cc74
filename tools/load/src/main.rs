//! weir-load: under construction.
fn main() {}
