//! inception-rcnn: R-CNN detection with a GoogLeNet region classifier, after GoogLeNet's
//! ILSVRC2014 detection entry.
//!
//! An image through `rcnn detect`, stage by stage:
//!
//! ```text
//!  image file ──decode──> RGB ──propose──> boxes ──warp──> 224x224 crops (on the device)
//!     detect::decode       detect::propose      detect::warp
//!                               │ (selective search: the `proposals` crate; MultiBox: multibox)
//!  crops ──batch──> ensemble: each network's softmax (or heads' SVMs), averaged ──> scores
//!     detect::batch   ensemble, model (GoogLeNet), heads
//!  scores ──postprocess──> box regression, per-class NMS, top-k ──> detections ──> outputs
//!     detect::postprocess, detect::nms                                  jobs::detect, eval
//! ```
//!
//! Modules, in that order, then the tasks and what runs them:
//! - [`detect`]: the per-image pipeline and its stages (decode, propose, warp, batch,
//!   postprocess, nms).
//! - [`ensemble`]: the networks of an ensemble and the averaging of their scores.
//! - [`model`]: GoogLeNet as Table 1 has it, model files, torch.save import, normalisation,
//!   precision. [`heads`]: R-CNN's box regression and class SVMs, as model files carry them.
//! - [`multibox`]: learned proposals. [`classify`]: GoogLeNet's classification test.
//! - [`train`]: fine-tuning the region classifier (and MultiBox), and fitting the heads.
//! - [`jobs`]: whole `detect` and `classify` runs (settings in, outputs and a summary out), as
//!   the CLI calls them. [`bench`]: speed against references.
//! - [`run`]: the device, the `--resume` journal, shards, drawings, an ordered parallel map,
//!   host/device copies.
//!
//! Boxes live in the `boxes` crate, proposals in `proposals`, formats and metrics in `eval`.
//! Dependencies point one way: jobs -> stages -> model -> heads, run.

pub mod bench;
pub mod classify;
pub mod detect;
pub mod ensemble;
pub mod heads;
pub mod jobs;
pub mod model;
pub mod multibox;
pub mod run;
pub mod train;
