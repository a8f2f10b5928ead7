//! The phase engine (to be written).
