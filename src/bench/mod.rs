//! Benchmarks. Each measures our stage and, where one exists here, the reference
//! implementation in the same run, so that ratios (not noisy absolute times) are compared.

pub mod classifier;
pub mod classify;
pub mod detect;
pub mod eval;
pub mod gpu;
pub mod nms;
pub mod proposals;
pub mod reference;
pub mod train;
pub mod train_data;
