//! hub (being written)
