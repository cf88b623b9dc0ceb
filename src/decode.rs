//! The client side: a spec-exact, bounded decoder (being written).
