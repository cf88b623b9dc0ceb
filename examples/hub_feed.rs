//! Hub example (being written).
fn main() {}
