//! The pod simulator (to be written).
