//! GoogLeNet (Szegedy et al. 2014, Table 1) in both layouts.
//!
//! VarStore paths are PyTorch's state-dict names (`inception4a.branch2.1.conv.weight`), so a
//! torchvision state dict loads with no renaming table.

use tch::nn;
use tch::{Device, Kind, Tensor};

use super::config::{GoogLeNetConfig, Layout, INCEPTION_WIDTHS};
use super::ModelError;

/// Convolution, batch norm in the torchvision layout, ReLU (torchvision's `BasicConv2d`).
#[derive(Debug)]
struct BasicConv {
    conv: nn::Conv2D,
    bn: Option<nn::BatchNorm>,
    stride: i64,
    padding: i64,
}

fn basic_conv(
    p: nn::Path,
    layout: Layout,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
) -> BasicConv {
    let batch_norm = layout == Layout::Torchvision;
    let conv_config = nn::ConvConfig {
        stride,
        padding: k / 2,
        bias: !batch_norm,
        // He initialisation: the paper layout has no batch norm to rescue a poor start.
        ws_init: nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanIn,
            non_linearity: nn::init::NonLinearity::ReLU,
        },
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    let conv = nn::conv2d(&p / "conv", c_in, c_out, k, conv_config);
    let bn = batch_norm.then(|| {
        let bn_config = nn::BatchNormConfig {
            eps: 1e-3,
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        nn::batch_norm2d(&p / "bn", c_out, bn_config)
    });
    BasicConv {
        conv,
        bn,
        stride,
        padding: k / 2,
    }
}

/// `w` in the kind of the activations it meets. Mixed-precision training keeps f32 master
/// weights and feeds reduced-precision inputs: the cast is part of the graph, so gradients
/// reach the f32 weights in f32. (Inference weights are already in the input's kind.)
fn in_kind_of(w: &Tensor, xs: &Tensor) -> Tensor {
    if w.kind() == xs.kind() {
        w.shallow_clone()
    } else {
        w.to_kind(xs.kind())
    }
}

/// A linear layer in the input's precision (see [`in_kind_of`]).
fn linear_t(layer: &nn::Linear, xs: &Tensor) -> Tensor {
    let bias = layer.bs.as_ref().map(|b| in_kind_of(b, xs));
    xs.linear(&in_kind_of(&layer.ws, xs), bias.as_ref())
}

/// Batch norm's epsilon in the torchvision layout.
const BN_EPS: f64 = 1e-3;

impl BasicConv {
    /// Inference weights: batch norm folded into the convolution (computed in f32 from the
    /// f32 weights, so reduced precision never sees the running statistics), then cast to
    /// `kind`, channels-last when asked. The VarStore keeps the original variables.
    fn prepare_inference(&mut self, kind: Kind, channels_last: bool) {
        tch::no_grad(|| {
            let w = self.conv.ws.to_kind(Kind::Float);
            let (w, b) = match self.bn.take() {
                Some(bn) => {
                    let gamma = bn
                        .ws
                        .as_ref()
                        .expect("affine batch norm")
                        .to_kind(Kind::Float);
                    let beta = bn
                        .bs
                        .as_ref()
                        .expect("affine batch norm")
                        .to_kind(Kind::Float);
                    let scale = gamma / (bn.running_var.to_kind(Kind::Float) + BN_EPS).sqrt();
                    let bias = beta - bn.running_mean.to_kind(Kind::Float) * &scale;
                    (w * scale.view([-1, 1, 1, 1]), Some(bias))
                }
                None => (w, self.conv.bs.as_ref().map(|b| b.to_kind(Kind::Float))),
            };
            let w = w.to_kind(kind);
            self.conv.ws = if channels_last {
                to_channels_last(&w)
            } else {
                w
            };
            self.conv.bs = b.map(|b| b.to_kind(kind));
        });
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let bias = self.conv.bs.as_ref().map(|b| in_kind_of(b, xs));
        let ys = xs.conv2d(
            &in_kind_of(&self.conv.ws, xs),
            bias.as_ref(),
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            1,
        );
        // ReLU in place, as torchvision: one activation-sized allocation less per layer, which
        // at batch 128 is hundreds of megabytes of fresh pages. Autograd allows it (neither
        // convolution nor batch norm needs its output for the backward pass).
        let mut ys = match &self.bn {
            Some(bn) => ys.apply_t(bn, train),
            None => ys,
        };
        ys.relu_()
    }
}

fn linear(p: nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let config = nn::LinearConfig {
        ws_init: nn::Init::Randn {
            mean: 0.0,
            stdev: 0.01,
        },
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(p, c_in, c_out, config)
}

/// An inception module: four branches concatenated along channels.
#[derive(Debug)]
struct Inception {
    branch1: BasicConv,
    branch2: [BasicConv; 2],
    branch3: [BasicConv; 2],
    branch4: BasicConv,
    out_channels: i64,
}

fn inception(p: nn::Path, config: &GoogLeNetConfig, c_in: i64, widths: [i64; 6]) -> Inception {
    let l = config.layout;
    let [c1, c3r, c3, c5r, c5, cp] = widths.map(|c| config.scaled(c));
    // torchvision has a 3x3 convolution in its "5x5" branch; its weights need it.
    let k5 = if l == Layout::Paper { 5 } else { 3 };
    Inception {
        branch1: basic_conv(&p / "branch1", l, c_in, c1, 1, 1),
        branch2: [
            basic_conv(&p / "branch2" / 0, l, c_in, c3r, 1, 1),
            basic_conv(&p / "branch2" / 1, l, c3r, c3, 3, 1),
        ],
        branch3: [
            basic_conv(&p / "branch3" / 0, l, c_in, c5r, 1, 1),
            basic_conv(&p / "branch3" / 1, l, c5r, c5, k5, 1),
        ],
        // Index 0 of torchvision's branch4 is the max pool, which has no weights.
        branch4: basic_conv(&p / "branch4" / 1, l, c_in, cp, 1, 1),
        out_channels: c1 + c3 + c5 + cp,
    }
}

impl Inception {
    fn convs_mut(&mut self) -> impl Iterator<Item = &mut BasicConv> {
        std::iter::once(&mut self.branch1)
            .chain(self.branch2.iter_mut())
            .chain(self.branch3.iter_mut())
            .chain(std::iter::once(&mut self.branch4))
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let b1 = self.branch1.forward_t(xs, train);
        let b2 = self.branch2[1].forward_t(&self.branch2[0].forward_t(xs, train), train);
        let b3 = self.branch3[1].forward_t(&self.branch3[0].forward_t(xs, train), train);
        let pooled = xs.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], true);
        let b4 = self.branch4.forward_t(&pooled, train);
        Tensor::cat(&[b1, b2, b3, b4], 1)
    }
}

/// Auxiliary classifier: avg pool, 1x1 conv 128, FC 1024, dropout 70%, FC to the classes.
#[derive(Debug)]
struct Aux {
    layout: Layout,
    conv: BasicConv,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

/// Side of the auxiliary classifier's pooled map for a `side` x `side` input to it.
fn aux_pooled_side(layout: Layout, side: i64) -> i64 {
    match layout {
        Layout::Paper => (side - 5) / 3 + 1, // avg pool 5x5 / 3, as the paper
        Layout::Torchvision => 4,            // adaptive avg pool to 4x4, as torchvision
    }
}

fn aux(p: nn::Path, config: &GoogLeNetConfig, c_in: i64, side: i64) -> Aux {
    let c_conv = config.scaled(128);
    let c_fc = config.scaled(1024);
    let pooled = aux_pooled_side(config.layout, side);
    Aux {
        layout: config.layout,
        conv: basic_conv(&p / "conv", config.layout, c_in, c_conv, 1, 1),
        fc1: linear(&p / "fc1", c_conv * pooled * pooled, c_fc),
        fc2: linear(&p / "fc2", c_fc, config.num_classes),
    }
}

impl Aux {
    fn forward_t(
        &self,
        xs: &Tensor,
        train: bool,
        name: &str,
        visit: &mut dyn FnMut(&str, &Tensor),
    ) -> Tensor {
        let pooled = match self.layout {
            Layout::Paper => xs.avg_pool2d([5, 5], [3, 3], [0, 0], false, true, None::<i64>),
            Layout::Torchvision => xs.adaptive_avg_pool2d([4, 4]),
        };
        visit(&format!("{name}.pool"), &pooled);
        let ys = self.conv.forward_t(&pooled, train);
        visit(&format!("{name}.conv"), &ys);
        let ys = linear_t(&self.fc1, &ys.flatten(1, -1)).relu_();
        visit(&format!("{name}.fc1"), &ys);
        let ys = linear_t(&self.fc2, &ys.dropout(0.7, train));
        visit(&format!("{name}.fc2"), &ys);
        ys
    }
}

/// Local response normalisation across channels, as Caffe's GoogLeNet (size 5, alpha 1e-4,
/// beta 0.75, k 1): x / (k + alpha/size * sum of squares over the window)^beta.
pub fn local_response_norm(xs: &Tensor) -> Tensor {
    const SIZE: i64 = 5;
    const ALPHA: f64 = 1e-4;
    const BETA: f64 = 0.75;
    const K: f64 = 1.0;
    let channels = xs.size()[1];
    // In f32 whatever the model's precision: in fp16 the squares of activations of a few
    // hundred overflow the window sum and zero whole channels.
    let kind = xs.kind();
    let xs = &xs.to_kind(Kind::Float);
    // The window sums as five shifted slices of the zero-padded squares, added in place: twice
    // as fast on the CPU as PyTorch's avg_pool3d formulation, equal to it within 3e-7.
    let padded = xs
        .square()
        .constant_pad_nd([0, 0, 0, 0, SIZE / 2, (SIZE - 1) / 2]);
    let mut sum = padded.narrow(1, 0, channels).copy();
    for shift in 1..SIZE {
        sum += padded.narrow(1, shift, channels);
    }
    let _ = sum.g_mul_scalar_(ALPHA / SIZE as f64);
    let _ = sum.g_add_scalar_(K);
    (xs * sum.pow_tensor_scalar(-BETA)).to_kind(kind)
}

/// The same values with channels-last strides (NHWC in memory), the layout in which cuDNN's
/// reduced-precision convolutions are fastest; libtorch's operators keep it from layer to
/// layer.
pub fn to_channels_last(t: &Tensor) -> Tensor {
    let s = t.size();
    assert_eq!(s.len(), 4, "NCHW tensor");
    let strides = [s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]];
    let mut out = Tensor::empty_strided(&s, strides, (t.kind(), t.device()));
    tch::no_grad(|| out.copy_(t));
    out
}

/// Side after a ceil-mode max pool, as PyTorch computes it (no window may start in the padding).
pub fn pooled_side_ceil(side: i64, k: i64, stride: i64) -> i64 {
    let mut out = (side - k + stride - 1) / stride + 1;
    if (out - 1) * stride >= side {
        out -= 1;
    }
    out
}

/// Side of the feature map entering inception 4a/4d (the auxiliary classifiers' input).
fn side_at_4x(input: i64) -> i64 {
    let s = (input + 2 * 3 - 7) / 2 + 1; // conv1 7x7/2, pad 3
    let s = pooled_side_ceil(s, 3, 2); // maxpool1
    let s = pooled_side_ceil(s, 3, 2); // maxpool2
    pooled_side_ceil(s, 3, 2) // maxpool3
}

/// Side of the grid of [`Logits::grid`]: what box regression reads.
pub use crate::heads::box_regression::GRID;

/// Logits of the main classifier and, in training, of the two auxiliary ones.
#[derive(Debug)]
pub struct Logits {
    pub main: Tensor,
    /// The pooled features `[N, 1024 x width]`: the global average pool, before dropout and
    /// the classifier (what R-CNN's SVMs and box regressors read).
    pub features: Tensor,
    /// The last inception map averaged over a [`GRID`] x [`GRID`] grid, `[N, 1024 x width x
    /// 9]` (channel-major: channel k's nine cells, row by row): features that keep where
    /// things are, for box regression.
    pub grid: Tensor,
    pub aux1: Option<Tensor>,
    pub aux2: Option<Tensor>,
}

/// GoogLeNet: stem, nine inception modules, global average pool, dropout, linear.
#[derive(Debug)]
pub struct GoogLeNet {
    config: GoogLeNetConfig,
    conv1: BasicConv,
    conv2: BasicConv,
    conv3: BasicConv,
    inceptions: Vec<Inception>,
    aux1: Option<Aux>,
    aux2: Option<Aux>,
    fc: nn::Linear,
    /// Set by [`GoogLeNet::prepare_inference`]: transform_input's constants, on the device.
    transform: Option<(Tensor, Tensor)>,
    prepared: bool,
}

impl GoogLeNet {
    pub fn new(p: &nn::Path, config: &GoogLeNetConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let l = config.layout;
        let c = |n| config.scaled(n);
        let conv1 = basic_conv(p / "conv1", l, 3, c(64), 7, 2);
        let conv2 = basic_conv(p / "conv2", l, c(64), c(64), 1, 1);
        let conv3 = basic_conv(p / "conv3", l, c(64), c(192), 3, 1);
        let mut inceptions = Vec::with_capacity(INCEPTION_WIDTHS.len());
        let mut c_in = c(192);
        let (mut aux1, mut aux2) = (None, None);
        let side = side_at_4x(config.input_size);
        for (name, widths) in INCEPTION_WIDTHS {
            let module = inception(p / name, config, c_in, widths);
            c_in = module.out_channels;
            inceptions.push(module);
            if config.aux_logits && name == "inception4a" {
                aux1 = Some(aux(p / "aux1", config, c_in, side));
            }
            if config.aux_logits && name == "inception4d" {
                aux2 = Some(aux(p / "aux2", config, c_in, side));
            }
        }
        let fc = linear(p / "fc", c_in, config.num_classes);
        Ok(GoogLeNet {
            config: config.clone(),
            conv1,
            conv2,
            conv3,
            inceptions,
            aux1,
            aux2,
            fc,
            transform: None,
            prepared: false,
        })
    }

    /// Makes the network an inference network in `kind`: batch norm folded into the
    /// convolutions, weights cast (the auxiliary heads dropped), optionally channels-last,
    /// transform_input's constants kept on the device. Afterwards the network can no longer
    /// train; the VarStore, which model files and checkpoints are written from, is untouched.
    pub fn prepare_inference(&mut self, kind: Kind, channels_last: bool) {
        if self.prepared {
            return;
        }
        let convs = [&mut self.conv1, &mut self.conv2, &mut self.conv3]
            .into_iter()
            .chain(self.inceptions.iter_mut().flat_map(Inception::convs_mut));
        for conv in convs {
            conv.prepare_inference(kind, channels_last);
        }
        tch::no_grad(|| {
            self.fc.ws = self.fc.ws.to_kind(kind);
            self.fc.bs = self.fc.bs.as_ref().map(|b| b.to_kind(kind));
        });
        (self.aux1, self.aux2) = (None, None);
        let device = self.fc.ws.device();
        self.transform = self
            .config
            .transform_input
            .then(|| transform_constants(kind, device));
        self.prepared = true;
    }

    /// Length of the pooled feature vector ([`Logits::features`]): the classifier's input.
    pub fn feature_dim(&self) -> i64 {
        self.fc.ws.size()[1]
    }

    /// Length of [`Logits::grid`].
    pub fn grid_dim(&self) -> i64 {
        self.feature_dim() * GRID * GRID
    }

    pub fn config(&self) -> &GoogLeNetConfig {
        &self.config
    }

    /// Logits for a batch `[N, 3, H, W]`. The auxiliary heads run only when `train` is true.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Logits {
        assert!(
            !(train && self.prepared),
            "a network prepared for inference cannot train"
        );
        self.run(xs, train, train, &mut |_, _| {})
    }

    /// Runs in inference mode and calls `visit` with each stage's name and output, the
    /// auxiliary heads included when the network has them (for `rcnn model-info`).
    pub fn visit_stages(&self, xs: &Tensor, visit: &mut dyn FnMut(&str, &Tensor)) -> Logits {
        self.run(xs, false, true, visit)
    }

    fn run(
        &self,
        xs: &Tensor,
        train: bool,
        with_aux: bool,
        visit: &mut dyn FnMut(&str, &Tensor),
    ) -> Logits {
        let paper = self.config.layout == Layout::Paper;
        let mut x = if let Some((scale, shift)) = &self.transform {
            xs * scale + shift
        } else if self.config.transform_input {
            let (scale, shift) = transform_constants(xs.kind(), xs.device());
            xs * scale + shift
        } else {
            xs.shallow_clone()
        };
        // The stem. conv1 7x7/2: 112x112x64; max pool 3x3/2: 56x56x64; (paper: LRN); conv2
        // 1x1: 56x56x64; conv3 3x3: 56x56x192; (paper: LRN); max pool 3x3/2: 28x28x192.
        x = stage("conv1", self.conv1.forward_t(&x, train), visit);
        x = stage("maxpool1", max_pool(&x, 3), visit);
        if paper {
            x = stage("lrn1", local_response_norm(&x), visit);
        }
        x = stage("conv2", self.conv2.forward_t(&x, train), visit);
        x = stage("conv3", self.conv3.forward_t(&x, train), visit);
        if paper {
            x = stage("lrn2", local_response_norm(&x), visit);
        }
        x = stage("maxpool2", max_pool(&x, 3), visit);
        // Inception module i of Table 1 (3a = 0 ... 5b = 8), under its name.
        let inception = |i: usize, x: Tensor, visit: &mut dyn FnMut(&str, &Tensor)| {
            stage(
                INCEPTION_WIDTHS[i].0,
                self.inceptions[i].forward_t(&x, train),
                visit,
            )
        };
        let aux = |head: &Option<Aux>, x: &Tensor, name, visit: &mut dyn FnMut(&str, &Tensor)| {
            head.as_ref()
                .filter(|_| with_aux)
                .map(|h| h.forward_t(x, train, name, visit))
        };
        // 3a, 3b: 28x28x256, 28x28x480; max pool 3x3/2: 14x14x480.
        x = inception(0, x, visit);
        x = inception(1, x, visit);
        x = stage("maxpool3", max_pool(&x, 3), visit);
        // 4a-4e: 14x14 x 512, 512, 512, 528, 832; the auxiliary classifiers read 4a and 4d.
        x = inception(2, x, visit);
        let aux1 = aux(&self.aux1, &x, "aux1", visit);
        x = inception(3, x, visit);
        x = inception(4, x, visit);
        x = inception(5, x, visit);
        let aux2 = aux(&self.aux2, &x, "aux2", visit);
        x = inception(6, x, visit);
        // Max pool to 7x7x832: the paper pools 3x3/2, torchvision 2x2/2.
        x = stage("maxpool4", max_pool(&x, if paper { 3 } else { 2 }), visit);
        // 5a, 5b: 7x7x832, 7x7x1024.
        x = inception(7, x, visit);
        x = inception(8, x, visit);
        // Where things are, for box regression: the last map averaged over a 3x3 grid (R-CNN
        // regresses from pool5, a 6x6 map; the global pool below keeps no position).
        let grid = x.adaptive_avg_pool2d([GRID, GRID]).flatten(1, -1);
        // Global average pool: the paper's 7x7 average pool at 224, any input size otherwise.
        x = stage(
            "avgpool",
            x.adaptive_avg_pool2d([1, 1]).flatten(1, -1),
            visit,
        );
        let p_drop = if paper { 0.4 } else { 0.2 };
        let main = stage("fc", linear_t(&self.fc, &x.dropout(p_drop, train)), visit);
        Logits {
            main,
            features: x,
            grid,
            aux1,
            aux2,
        }
    }
}

/// Max pooling k x k with stride 2, the output size rounded up (Caffe's and torchvision's
/// `ceil_mode`).
fn max_pool(x: &Tensor, k: i64) -> Tensor {
    x.max_pool2d([k, k], [2, 2], [0, 0], [1, 1], true)
}

/// Hands a stage's output to the visitor and passes it on.
fn stage(name: &str, t: Tensor, visit: &mut dyn FnMut(&str, &Tensor)) -> Tensor {
    visit(name, &t);
    t
}

/// torchvision's `transform_input` as `x * scale + shift` per channel: from ImageNet mean/std
/// normalisation to (x - 0.5) / 0.5.
fn transform_constants(kind: Kind, device: Device) -> (Tensor, Tensor) {
    // In f64 first, as torchvision's Python scalars, so the f32 constants match its own.
    const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
    const STD: [f64; 3] = [0.229, 0.224, 0.225];
    let scale = STD.map(|s| (s / 0.5) as f32);
    let shift = MEAN.map(|m| ((m - 0.5) / 0.5) as f32);
    let on_device = |v: &[f32]| {
        Tensor::from_slice(v)
            .to_kind(kind)
            .to_device(device)
            .view([1, 3, 1, 1])
    };
    (on_device(&scale), on_device(&shift))
}
