//! The paper's optimisation (section 6): SGD with momentum 0.9, a fixed schedule that lowers
//! the learning rate by 4% every 8 epochs, and Polyak averaging of the weights for the model
//! used at inference. Written out (rather than libtorch's optimiser) so that the momentum
//! buffers can go into checkpoints and a resumed run continues exactly.

use std::collections::HashMap;

use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

/// Learning rate at each step: `base * decay ^ floor(epoch / every_epochs)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub base_lr: f64,
    /// The paper: 0.96.
    pub decay: f64,
    /// The paper: 8. Short runs scale it down.
    pub every_epochs: f64,
    pub steps_per_epoch: f64,
}

impl Schedule {
    pub fn epoch(&self, step: usize) -> f64 {
        step as f64 / self.steps_per_epoch.max(1e-9)
    }

    pub fn lr(&self, step: usize) -> f64 {
        let drops = (self.epoch(step) / self.every_epochs.max(1e-9)).floor();
        self.base_lr * self.decay.powf(drops)
    }
}

/// Variables of a VarStore moved into one contiguous buffer, each variable a view of its
/// slice, so that an update of all of them is one kernel, not one per tensor (GoogLeNet has
/// about 180 trainable tensors; per-tensor SGD and averaging launched about 1,500 kernels a
/// step).
pub struct Flat {
    /// The buffer (f32, on the variables' device).
    pub data: Tensor,
    /// Name, offset and shape of each variable, in name order.
    entries: Vec<(String, i64, Vec<i64>)>,
    /// The variables themselves (their gradients are read from them).
    vars: Vec<Tensor>,
}

impl Flat {
    /// Gathers `vars` (sorted here by name) into one buffer and points each at its slice.
    pub fn gather(mut vars: Vec<(String, Tensor)>, device: Device) -> Flat {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let total: i64 = vars.iter().map(|(_, t)| t.numel() as i64).sum();
        let data = Tensor::zeros([total], (Kind::Float, device));
        let mut entries = Vec::with_capacity(vars.len());
        let mut offset = 0;
        tch::no_grad(|| {
            for (name, t) in &mut vars {
                let n = t.numel() as i64;
                let mut slice = data.narrow(0, offset, n).view(t.size().as_slice());
                slice.copy_(t);
                t.set_data(&slice);
                entries.push((name.clone(), offset, t.size()));
                offset += n;
            }
        });
        Flat {
            data,
            entries,
            vars: vars.into_iter().map(|(_, t)| t).collect(),
        }
    }

    /// `src` (a buffer laid out as this one) viewed as named tensors.
    pub fn views_of(&self, src: &Tensor) -> Vec<(String, Tensor)> {
        self.entries
            .iter()
            .map(|(name, offset, shape)| {
                let n: i64 = shape.iter().product();
                (
                    name.clone(),
                    src.narrow(0, *offset, n).view(shape.as_slice()),
                )
            })
            .collect()
    }

    /// The variables' gradients as one buffer (zeros where a variable has none).
    pub fn grad(&self) -> Tensor {
        let grads: Vec<Tensor> = self
            .vars
            .iter()
            .map(|v| {
                let g = v.grad();
                if g.defined() {
                    g.to_kind(Kind::Float).reshape([-1])
                } else {
                    Tensor::zeros([v.numel() as i64], (Kind::Float, v.device()))
                }
            })
            .collect();
        Tensor::cat(&grads, 0)
    }
}

/// SGD with momentum and weight decay, PyTorch's form: `v = m v + (g + wd w)`, `w -= lr v`.
/// Biases take no weight decay, as in Caffe's GoogLeNet (`decay_mult: 0`). Over flattened
/// parameters ([`Flat`]): a step is a handful of kernels whatever the network.
pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    params: Flat,
    /// Momentum, laid out as `params`.
    buffer: Tensor,
    /// Weight decay per element: `weight_decay` for weights, 0 for biases.
    decay: Tensor,
    /// libtorch's own optimiser, used only for its `zero_grad`, which drops the gradients
    /// (set to none) instead of zeroing each one with a kernel.
    clear: nn::Optimizer,
}

impl Sgd {
    /// Over the trainable variables of `vs` (which become views of one buffer), momentum at 0.
    pub fn new(vs: &nn::VarStore, momentum: f64, weight_decay: f64) -> Self {
        let trainable: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        let device = vs.device();
        let params = Flat::gather(trainable, device);
        let decay: Vec<f32> = params
            .entries
            .iter()
            .flat_map(|(name, _, shape)| {
                let d = if name.ends_with(".bias") {
                    0.0
                } else {
                    weight_decay as f32
                };
                std::iter::repeat_n(d, shape.iter().product::<i64>() as usize)
            })
            .collect();
        let clear = nn::Sgd::default()
            .build(vs, 0.0)
            .expect("libtorch builds an optimiser over a VarStore");
        Sgd {
            momentum,
            weight_decay,
            buffer: params.data.zeros_like(),
            decay: Tensor::from_slice(&decay).to_device(device),
            params,
            clear,
        }
    }

    /// The trainable weights as one f32 buffer (for Polyak averaging).
    pub fn weights(&self) -> &Tensor {
        &self.params.data
    }

    pub fn zero_grad(&mut self) {
        self.clear.zero_grad();
    }

    /// The gradients now held by the variables, as one buffer (f32).
    pub fn grad(&self) -> Tensor {
        self.params.grad()
    }

    /// One update with the gradients now held by the variables.
    pub fn step(&mut self, lr: f64) {
        let g = self.params.grad();
        self.step_with(&g, lr);
    }

    /// One update with the gradient `g` (laid out as the weights).
    pub fn step_with(&mut self, g: &Tensor, lr: f64) {
        tch::no_grad(|| {
            let _ = self.buffer.g_mul_scalar_(self.momentum);
            self.buffer += g;
            let _ = self.buffer.addcmul_(&self.decay, &self.params.data);
            self.params.data -= &self.buffer * lr;
        });
    }

    /// The momentum buffers by variable name (for checkpoints).
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        self.params.views_of(&self.buffer)
    }

    /// Restores the buffers saved by [`Sgd::buffers`]; names the first one missing.
    pub fn load_buffers(&mut self, saved: &HashMap<String, Tensor>) -> Result<(), String> {
        tch::no_grad(|| {
            for (name, mut buf) in self.params.views_of(&self.buffer) {
                let src = saved
                    .get(&name)
                    .ok_or_else(|| format!("no momentum buffer for {name}"))?;
                if src.size() != buf.size() {
                    return Err(format!(
                        "momentum buffer {name} has shape {:?}, expected {:?}",
                        src.size(),
                        buf.size()
                    ));
                }
                buf.copy_(&src.to_device(buf.device()).to_kind(buf.kind()));
            }
            Ok(())
        })
    }
}

/// The averaged network's variables, flattened as the live network's: trained weights in one
/// buffer (laid out as [`Sgd::weights`]), the rest (batch-norm statistics) in another.
pub struct Polyak {
    weights: Flat,
    others: Flat,
    live_others: Flat,
}

impl Polyak {
    /// `avg` and `live` must hold the same variables; `live`'s trainable ones must already be
    /// flattened by [`Sgd::new`] (same name order, so the layouts agree).
    pub fn new(avg: &nn::VarStore, live: &nn::VarStore) -> Polyak {
        let live_vars = live.variables();
        let (trained, others): (Vec<_>, Vec<_>) = avg
            .variables()
            .into_iter()
            .partition(|(name, _)| live_vars[name].requires_grad());
        let live_others: Vec<(String, Tensor)> = live_vars
            .into_iter()
            .filter(|(_, t)| !t.requires_grad())
            .collect();
        Polyak {
            weights: Flat::gather(trained, avg.device()),
            others: Flat::gather(others, avg.device()),
            live_others: Flat::gather(live_others, live.device()),
        }
    }

    /// Polyak averaging as an exponential moving average whose decay grows with the step
    /// (`min(cap, (1 + t) / (10 + t))`), so that short runs average over their own length
    /// rather than over a start they never left. Variables that are not trained (batch-norm
    /// statistics) are copied. Two kernels.
    pub fn update(&mut self, live_weights: &Tensor, cap: f64, step: usize) {
        let decay = cap.min((1.0 + step as f64) / (10.0 + step as f64));
        tch::no_grad(|| {
            let _ = self.weights.data.lerp_(live_weights, 1.0 - decay);
            self.others.data.copy_(&self.live_others.data);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn the_schedule_drops_four_percent_every_eight_epochs() {
        let s = Schedule {
            base_lr: 0.01,
            decay: 0.96,
            every_epochs: 8.0,
            steps_per_epoch: 100.0,
        };
        assert_eq!(s.lr(0), 0.01);
        assert_eq!(s.lr(799), 0.01);
        assert!((s.lr(800) - 0.0096).abs() < 1e-15);
        assert!((s.lr(2400) - 0.01 * 0.96f64.powi(3)).abs() < 1e-15);
        assert_eq!(s.epoch(250), 2.5);
    }

    #[test]
    fn momentum_and_weight_decay_as_pytorch() {
        // One weight w = 2 with loss w^2 (gradient 2w), lr 0.1, momentum 0.9, decay 0.01:
        // v1 = 4 + 0.02 = 4.02, w1 = 2 - 0.402 = 1.598;
        // v2 = 0.9 * 4.02 + 2 * 1.598 + 0.01598 = 6.82998, w2 = 1.598 - 0.682998 = 0.915002.
        let vs = nn::VarStore::new(Device::Cpu);
        let w = (vs.root() / "layer").var("weight", &[1], nn::Init::Const(2.0));
        let b = (vs.root() / "layer").var("bias", &[1], nn::Init::Const(2.0));
        let mut sgd = Sgd::new(&vs, 0.9, 0.01);
        for _ in 0..2 {
            sgd.zero_grad();
            (w.square().sum(Kind::Float) + b.square().sum(Kind::Float)).backward();
            sgd.step(0.1);
        }
        assert!((w.double_value(&[0]) - 0.915002).abs() < 1e-6);
        // The bias takes no decay: v1 = 4, b1 = 1.6; v2 = 3.6 + 3.2 = 6.8, b2 = 0.92.
        assert!((b.double_value(&[0]) - 0.92).abs() < 1e-6);
    }

    #[test]
    fn polyak_average_follows_the_weights() {
        let live = nn::VarStore::new(Device::Cpu);
        let w = live.root().var("w", &[1], nn::Init::Const(1.0));
        let stat = live.root().zeros_no_train("running_mean", &[2]);
        let avg = nn::VarStore::new(Device::Cpu);
        let a = avg.root().var("w", &[1], nn::Init::Const(0.0));
        let a_stat = avg.root().zeros_no_train("running_mean", &[2]);
        let sgd = Sgd::new(&live, 0.9, 0.0);
        let mut polyak = Polyak::new(&avg, &live);
        // Step 0: decay 1/10, so the average is 0.1 * 0 + 0.9 * 1.
        polyak.update(sgd.weights(), 0.999, 0);
        assert!((a.double_value(&[0]) - 0.9).abs() < 1e-7);
        tch::no_grad(|| {
            let _ = w.shallow_clone().fill_(3.0);
            let _ = stat.shallow_clone().fill_(5.0);
        });
        // Step 90: decay 91/100: 0.91 * 0.9 + 0.09 * 3 = 1.089; statistics are copied.
        polyak.update(sgd.weights(), 0.999, 90);
        assert!((a.double_value(&[0]) - 1.089).abs() < 1e-6);
        assert_eq!(a_stat.double_value(&[1]), 5.0);
    }

    #[test]
    fn flattened_variables_are_views_of_one_buffer() {
        let vs = nn::VarStore::new(Device::Cpu);
        let b = vs.root().var("b", &[2, 3], nn::Init::Const(2.0));
        let a = vs.root().var("a", &[4], nn::Init::Const(1.0));
        let flat = Flat::gather(vs.variables().into_iter().collect(), Device::Cpu);
        // Name order: a (4) then b (6).
        assert_eq!(flat.data.size(), [10]);
        assert_eq!(flat.data.double_value(&[3]), 1.0);
        assert_eq!(flat.data.double_value(&[4]), 2.0);
        tch::no_grad(|| {
            let mut d = flat.data.shallow_clone();
            let _ = d.g_mul_scalar_(10.0);
        });
        // The variables (and every module holding them) see the buffer.
        assert_eq!(a.double_value(&[0]), 10.0);
        assert_eq!(b.double_value(&[1, 2]), 20.0);
        assert!(a.requires_grad() && b.requires_grad());
        (a.sum(Kind::Float) * 2.0 + b.sum(Kind::Float)).backward();
        let g: Vec<f32> = Vec::try_from(flat.grad()).unwrap();
        assert_eq!(g, [2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    }
}
