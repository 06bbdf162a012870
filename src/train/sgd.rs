//! The paper's optimisation (section 6): SGD with momentum 0.9, a fixed schedule that lowers
//! the learning rate by 4% every 8 epochs, and Polyak averaging of the weights for the model
//! used at inference. Written out (rather than libtorch's optimiser) so that the momentum
//! buffers can go into checkpoints and a resumed run continues exactly.

use std::collections::HashMap;

use tch::{nn, Tensor};

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

/// SGD with momentum and weight decay, PyTorch's form: `v = m v + (g + wd w)`, `w -= lr v`.
/// Biases take no weight decay, as in Caffe's GoogLeNet (`decay_mult: 0`).
pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    params: Vec<(String, Tensor)>,
    buffers: Vec<Tensor>,
}

impl Sgd {
    /// Over the trainable variables of `vs`, momentum buffers at zero.
    pub fn new(vs: &nn::VarStore, momentum: f64, weight_decay: f64) -> Self {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = params.iter().map(|(_, t)| t.zeros_like()).collect();
        Sgd {
            momentum,
            weight_decay,
            params,
            buffers,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// One update with the gradients now held by the variables.
    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((name, p), buf) in self.params.iter().zip(self.buffers.iter_mut()) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let decay = if name.ends_with(".bias") {
                    0.0
                } else {
                    self.weight_decay
                };
                let _ = buf.g_mul_scalar_(self.momentum);
                *buf += &g;
                if decay != 0.0 {
                    *buf += p * decay;
                }
                let mut p = p.shallow_clone();
                p -= &*buf * lr;
            }
        });
    }

    /// The momentum buffers by variable name (for checkpoints).
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .map(|((name, _), b)| (name.clone(), b.shallow_clone()))
            .collect()
    }

    /// Restores the buffers saved by [`Sgd::buffers`]; names the first one missing.
    pub fn load_buffers(&mut self, saved: &HashMap<String, Tensor>) -> Result<(), String> {
        tch::no_grad(|| {
            for ((name, _), buf) in self.params.iter().zip(self.buffers.iter_mut()) {
                let src = saved
                    .get(name)
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

/// Polyak averaging as an exponential moving average whose decay grows with the step
/// (`min(cap, (1 + t) / (10 + t))`), so that short runs average over their own length rather
/// than over a start they never left. Variables that are not trained (batch-norm statistics)
/// are copied.
pub fn polyak_update(avg: &nn::VarStore, live: &nn::VarStore, cap: f64, step: usize) {
    let decay = cap.min((1.0 + step as f64) / (10.0 + step as f64));
    let live_vars = live.variables();
    tch::no_grad(|| {
        for (name, a) in avg.variables() {
            let w = &live_vars[&name];
            let mut a = a;
            if w.requires_grad() {
                let _ = a.g_mul_scalar_(decay);
                a += w * (1.0 - decay);
            } else {
                a.copy_(w);
            }
        }
    });
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
        let avg = nn::VarStore::new(Device::Cpu);
        let a = avg.root().var("w", &[1], nn::Init::Const(0.0));
        // Step 0: decay 1/10, so the average is 0.1 * 0 + 0.9 * 1.
        polyak_update(&avg, &live, 0.999, 0);
        assert!((a.double_value(&[0]) - 0.9).abs() < 1e-7);
        tch::no_grad(|| {
            let _ = w.shallow_clone().fill_(3.0);
        });
        // Step 90: decay 91/100: 0.91 * 0.9 + 0.09 * 3 = 1.089.
        polyak_update(&avg, &live, 0.999, 90);
        assert!((a.double_value(&[0]) - 1.089).abs() < 1e-6);
    }
}
