//! What runs the stages, and none of the stages themselves: the device, the journal that makes
//! `--resume` exact, sharding across machines, drawings, an ordered parallel map, progress
//! reports, and tensors between host and device.

pub mod device;
pub mod journal;
pub mod lock;
pub mod ordered;
pub mod progress;
pub mod shard;
pub mod tensor;
pub mod visualize;
