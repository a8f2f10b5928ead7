//! chaos-runner library (to be written).
