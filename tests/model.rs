//! GoogLeNet against its references: torchvision's logits and parameter count, the paper's
//! Table 1 shapes and operation counts, and our model files read back exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use inception_rcnn::model::googlenet::{local_response_norm, to_channels_last};
use inception_rcnn::model::summary::summarize;
use inception_rcnn::model::weights::{infer_config, load_state_dict, read_state_dict};
use inception_rcnn::model::{GoogLeNetConfig, Layout, Model, ModelError};
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/googlenet_parity")
        .join(name)
}

fn reference_outputs() -> HashMap<String, Tensor> {
    read_state_dict(&fixture("input_and_logits.safetensors")).unwrap()
}

/// max |a - b| / max |b|: the relative error of a whole tensor.
fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    let diff = (a - b).abs().max().double_value(&[]);
    diff / b.abs().max().double_value(&[])
}

fn small(layout: Layout) -> GoogLeNetConfig {
    GoogLeNetConfig {
        width: 0.25,
        input_size: 96,
        num_classes: 7,
        ..GoogLeNetConfig::new(layout)
    }
}

#[test]
fn torchvision_layout_has_torchvisions_parameter_count() {
    let mut config = GoogLeNetConfig::new(Layout::Torchvision);
    config.num_classes = 1000;
    let model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    // torchvision.models.googlenet(aux_logits=False): sum(p.numel() for p in parameters()).
    assert_eq!(summarize(&model).params(), 6_624_904);
    let provenance = std::fs::read_to_string(fixture("PROVENANCE.json")).unwrap();
    assert!(provenance.contains("\"parameters_1000_classes\": \"6624904\""));
}

#[test]
fn paper_layout_follows_table_1() {
    let mut config = GoogLeNetConfig::new(Layout::Paper);
    config.num_classes = 1000;
    let model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    let s = summarize(&model);
    let shape = |name: &str| {
        s.row(name)
            .unwrap_or_else(|| panic!("no stage {name}"))
            .shape
            .clone()
    };
    // Table 1, "output size" column (written there as H x W x C).
    for (name, hwc) in [
        ("conv1", [112, 112, 64]),
        ("maxpool1", [56, 56, 64]),
        ("conv3", [56, 56, 192]),
        ("maxpool2", [28, 28, 192]),
        ("inception3a", [28, 28, 256]),
        ("inception3b", [28, 28, 480]),
        ("maxpool3", [14, 14, 480]),
        ("inception4a", [14, 14, 512]),
        ("inception4b", [14, 14, 512]),
        ("inception4c", [14, 14, 512]),
        ("inception4d", [14, 14, 528]),
        ("inception4e", [14, 14, 832]),
        ("maxpool4", [7, 7, 832]),
        ("inception5a", [7, 7, 832]),
        ("inception5b", [7, 7, 1024]),
    ] {
        assert_eq!(shape(name), vec![hwc[2], hwc[0], hwc[1]], "{name}");
    }
    assert_eq!(shape("avgpool"), vec![1024]);
    assert_eq!(shape("fc"), vec![1000]);
    // Table 1, "ops" column, in millions. Its conv1 (34M) and 5a (54M) entries disagree with
    // the widths the same table gives (118M and 51M), so those two are left out.
    let mops =
        |names: &[&str]| names.iter().map(|n| s.row(n).unwrap().macs).sum::<i64>() as f64 / 1e6;
    for (names, table) in [
        (&["conv2", "conv3"][..], 360.0),
        (&["inception3a"], 128.0),
        (&["inception3b"], 304.0),
        (&["inception4a"], 73.0),
        (&["inception4b"], 88.0),
        (&["inception4c"], 100.0),
        (&["inception4d"], 119.0),
        (&["inception4e"], 170.0),
        (&["inception5b"], 71.0),
        (&["fc"], 1.0),
    ] {
        let ours = mops(names);
        assert!(
            (ours - table).abs() < 1.0,
            "{names:?}: {ours:.2}M vs Table 1's {table}M"
        );
    }
    // The paper: "about 1.5 billion multiply-adds".
    assert!((s.macs() as f64 / 1e9 - 1.58).abs() < 0.01, "{}", s.macs());
}

#[test]
fn summary_counts_every_trainable_weight() {
    for layout in [Layout::Paper, Layout::Torchvision] {
        let mut config = small(layout);
        config.aux_logits = true;
        let model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
        let trainable: i64 = model
            .vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(summarize(&model).params_with_aux(), trainable, "{layout}");
    }
}

#[test]
fn training_returns_auxiliary_logits_and_inference_does_not() {
    for layout in [Layout::Paper, Layout::Torchvision] {
        let mut config = small(layout);
        config.aux_logits = true;
        let model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
        let x = Tensor::randn([3, 3, 96, 96], (Kind::Float, Device::Cpu));
        let train = model.net.forward_t(&x, true);
        assert_eq!(train.main.size(), vec![3, 7]);
        assert_eq!(train.aux1.unwrap().size(), vec![3, 7]);
        assert_eq!(train.aux2.unwrap().size(), vec![3, 7]);
        let eval = tch::no_grad(|| model.net.forward_t(&x, false));
        assert!(eval.aux1.is_none() && eval.aux2.is_none());
        // Inference is deterministic (no dropout).
        let again = tch::no_grad(|| model.net.forward_t(&x, false));
        assert_eq!(relative_error(&eval.main, &again.main), 0.0);
    }
}

#[test]
fn lrn_matches_pytorch() {
    let r = reference_outputs();
    let ours = local_response_norm(&r["lrn_input"]);
    let err = relative_error(&ours, &r["lrn_output"]);
    assert!(err < 1e-6, "relative error {err}");
    // The fixture's inputs are large enough that normalisation changes them by several percent.
    assert!(relative_error(&r["lrn_input"], &r["lrn_output"]) > 0.02);
    // A batch of one (where channel slices are contiguous views) gives the same rows.
    let one = local_response_norm(&r["lrn_input"].narrow(0, 1, 1));
    assert!(relative_error(&one, &r["lrn_output"].narrow(0, 1, 1)) < 1e-6);
}

#[test]
fn gradients_reach_every_weight_through_lrn_and_the_auxiliary_heads() {
    let mut config = small(Layout::Paper);
    config.aux_logits = true;
    let model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    let x = Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu));
    let out = model.net.forward_t(&x, true);
    let aux =
        out.aux1.unwrap().square().mean(Kind::Float) + out.aux2.unwrap().square().mean(Kind::Float);
    let loss = out.main.square().mean(Kind::Float) + aux * 0.3;
    loss.backward();
    for (name, w) in model.vs.variables() {
        if w.requires_grad() {
            let g = w.grad();
            assert!(g.defined(), "{name} has no gradient");
            assert_eq!(g.isfinite().all().int64_value(&[]), 1, "{name}");
        }
    }
}

fn torchvision_model_from_fixture(transform_input: bool) -> Model {
    let path = fixture("googlenet_tv10_f16.pth");
    let tensors = read_state_dict(&path).unwrap();
    let mut config = infer_config(&tensors, &path).unwrap();
    assert_eq!(
        (
            config.layout,
            config.num_classes,
            config.width,
            config.aux_logits
        ),
        (Layout::Torchvision, 10, 1.0, false)
    );
    config.transform_input = transform_input;
    let mut model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    load_state_dict(&mut model.vs, &tensors, &path).unwrap();
    model
}

#[test]
fn logits_equal_torchvisions() {
    let r = reference_outputs();
    for (transform_input, key) in [
        (false, "logits_transform_input_false"),
        (true, "logits_transform_input_true"),
    ] {
        let model = torchvision_model_from_fixture(transform_input);
        let logits = tch::no_grad(|| model.net.forward_t(&r["input"], false).main);
        assert_eq!(logits.size(), vec![2, 10]);
        let err = relative_error(&logits, &r[key]);
        eprintln!("parity, transform_input {transform_input}: relative error {err:.2e}");
        assert!(
            err < 1e-4,
            "transform_input {transform_input}: relative error {err}"
        );
    }
}

#[test]
fn pooled_and_grid_features_equal_torchvisions_and_come_from_the_same_pass() {
    let r = reference_outputs();
    let f = read_state_dict(&fixture("features.safetensors")).unwrap();
    for transform_input in [false, true] {
        let model = torchvision_model_from_fixture(transform_input);
        let out = tch::no_grad(|| model.net.forward_t(&r["input"], false));
        let key = format!("features_transform_input_{transform_input}");
        assert_eq!(out.features.size(), vec![2, 1024]);
        let err = relative_error(&out.features, &f[&key]);
        assert!(err < 1e-4, "transform_input {transform_input}: {err}");
        // Box regression's features: inception 5b's map on a 3x3 grid, as torch pools it.
        let grid = format!("grid_transform_input_{transform_input}");
        assert_eq!(out.grid.size(), vec![2, 9 * 1024]);
        let err = relative_error(&out.grid, &f[&grid]);
        assert!(err < 1e-4, "grid, transform_input {transform_input}: {err}");
        // The ensemble hands back the same features beside its scores, in one pass.
        let ensemble = inception_rcnn::ensemble::Ensemble::new(vec![model], Kind::Float).unwrap();
        let (scores, features) = ensemble.scores_and_features(&r["input"]);
        assert_eq!(scores.size(), vec![2, 10]);
        assert!(relative_error(&features[0], &f[&key]) < 1e-4);
        let alone = ensemble.scores_tensor(&r["input"]);
        assert_eq!(relative_error(&scores, &alone), 0.0);
    }
}

#[test]
fn model_file_round_trip_keeps_weights_and_metadata() {
    let r = reference_outputs();
    let model = torchvision_model_from_fixture(true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tv.safetensors");
    model.save(&path).unwrap();
    let back = Model::load(&path, Device::Cpu).unwrap();
    assert_eq!(back.config(), model.config());
    assert_eq!(back.classes, model.classes);
    let a = tch::no_grad(|| model.net.forward_t(&r["input"], false).main);
    let b = tch::no_grad(|| back.net.forward_t(&r["input"], false).main);
    assert_eq!(relative_error(&a, &b), 0.0);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["tv.safetensors"]);
}

#[test]
fn plain_safetensors_export_imports_like_the_pth() {
    // What `safetensors.torch.save_file(model.state_dict(), ...)` writes: names, no metadata.
    let path = fixture("googlenet_tv10_f16.pth");
    let tensors = read_state_dict(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("export.safetensors");
    let named: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    Tensor::write_safetensors(&named, &st).unwrap();
    let from_st = read_state_dict(&st).unwrap();
    let mut config = infer_config(&from_st, &st).unwrap();
    config.transform_input = true;
    let mut model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    load_state_dict(&mut model.vs, &from_st, &st).unwrap();
    let r = reference_outputs();
    let logits = tch::no_grad(|| model.net.forward_t(&r["input"], false).main);
    assert!(relative_error(&logits, &r["logits_transform_input_true"]) < 1e-4);
    // It is not one of our model files, and loading it as one says what to do.
    let err = Model::load(&st, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("import-weights"), "{err}");
}

#[test]
fn a_tensor_that_does_not_fit_is_named_with_both_shapes() {
    let path = fixture("googlenet_tv10_f16.pth");
    let mut tensors = read_state_dict(&path).unwrap();
    tensors.insert(
        "inception4a.branch2.1.conv.weight".into(),
        Tensor::zeros([208, 96, 5, 5], (Kind::Half, Device::Cpu)),
    );
    let config = infer_config(&tensors, &path).unwrap();
    let mut model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    let err = load_state_dict(&mut model.vs, &tensors, &path).unwrap_err();
    assert!(matches!(err, ModelError::ShapeMismatch { .. }));
    let msg = err.to_string();
    assert!(msg.contains("inception4a.branch2.1.conv.weight"), "{msg}");
    assert!(
        msg.contains("[208, 96, 5, 5]") && msg.contains("[208, 96, 3, 3]"),
        "{msg}"
    );

    // A paper-layout network cannot take torchvision's weights: the missing tensors are named.
    let mut tensors = read_state_dict(&path).unwrap();
    tensors.retain(|k, _| !k.starts_with("inception5b"));
    let mut model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    let msg = load_state_dict(&mut model.vs, &tensors, &path)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing") && msg.contains("inception5b.branch1"),
        "{msg}"
    );
}

#[test]
fn reduced_precision_runs_and_agrees_roughly() {
    // bf16 on the CPU: what `bench classifier --precisions bf16` and CUDA autocast rely on.
    let r = reference_outputs();
    let mut model = torchvision_model_from_fixture(false);
    model.vs.set_kind(Kind::BFloat16);
    let logits = tch::no_grad(|| {
        model
            .net
            .forward_t(&r["input"].to_kind(Kind::BFloat16), false)
            .main
    });
    let err = relative_error(
        &logits.to_kind(Kind::Float),
        &r["logits_transform_input_false"],
    );
    assert!(err < 0.1, "bf16 relative error {err}");
}

#[test]
fn the_paper_auxiliary_heads_need_79_pixels_and_run_from_there() {
    // conv1 7x7/2 and three ceil-mode 3x3/2 pools leave 5x5 after 4a from 79 px (4x4 at 78),
    // and the paper's 5x5/3 auxiliary pool needs 5x5.
    let mut config = small(Layout::Paper);
    config.aux_logits = true;
    config.input_size = 78;
    let err = Model::new(&config, Vec::new(), Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("[79, 4096]"), "{err}");
    config.input_size = 79;
    let model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    let x = Tensor::randn([2, 3, 79, 79], (Kind::Float, Device::Cpu));
    let out = model.net.forward_t(&x, true);
    assert_eq!(out.aux1.unwrap().size(), vec![2, 7]);
    // Without auxiliary heads, small inputs are fine.
    config.aux_logits = false;
    config.input_size = 64;
    assert!(Model::new(&config, Vec::new(), Device::Cpu).is_ok());
}

/// Standard normal values from a local seeded generator: tests run in parallel and share
/// libtorch's random generator, so a seeded draw from it is not reproducible.
fn local_randn(shape: &[i64], seed: u64, device: Device) -> Tensor {
    let mut rng = proposals::rng::SplitMix64::new(seed);
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            // Box-Muller.
            let (u, v) = (rng.uniform().max(1e-12), rng.uniform());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        })
        .collect();
    Tensor::from_slice(&values).view(shape).to_device(device)
}

/// A small network of `layout` with every weight drawn from a local seeded generator, whose
/// batch norms (torchvision layout) hold statistics and affine weights far from their initial
/// values, so that folding them is not the identity.
fn seeded_with_batch_norm_statistics(layout: Layout, seed: i64, device: Device) -> Model {
    let model = Model::new(&small(layout), Vec::new(), device).unwrap();
    // In name order: the VarStore's map iterates in a different order in every instance.
    let mut variables: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (k, (name, mut t)) in variables.into_iter().enumerate() {
            let shape = t.size();
            let draw = local_randn(&shape, (seed as u64) << 32 | k as u64, device);
            if name.ends_with("running_mean") || name.ends_with("bn.bias") {
                t.copy_(&(draw * 0.3));
            } else if name.ends_with("running_var") || name.ends_with("bn.weight") {
                t.copy_(&(draw.abs() * 0.3 + 0.5));
            } else if shape.len() > 1 {
                // Weights as PyTorch's default initialisation scales them: 1 / sqrt(fan-in).
                let fan_in = shape[1..].iter().product::<i64>() as f64;
                t.copy_(&(draw / fan_in.sqrt()));
            } else {
                t.copy_(&(draw * 0.01));
            }
        }
    });
    model
}

/// The same network with the same weights (tests run in parallel and share libtorch's random
/// generator, so seeding twice would not give twice the same weights), prepared for inference
/// in `kind`, channels-last or not.
fn prepared_copy(model: &Model, kind: Kind, channels_last: bool) -> Model {
    let mut copy = Model::new(model.config(), model.classes.clone(), model.vs.device()).unwrap();
    copy.vs.copy(&model.vs).unwrap();
    copy.net.prepare_inference(kind, channels_last);
    copy
}

#[test]
fn inference_weights_keep_the_logits_folded_and_channels_last() {
    // Folding batch norm into the convolutions and running channels-last change only the
    // order of floating-point operations: fp32 logits agree to 1e-5 at every batch size.
    let device = inception_rcnn::run::device::test_device();
    for layout in [Layout::Torchvision, Layout::Paper] {
        let reference = seeded_with_batch_norm_statistics(layout, 11, device);
        let folded = prepared_copy(&reference, Kind::Float, false);
        let last = prepared_copy(&reference, Kind::Float, true);
        for batch in [7, 32, 256] {
            let x = local_randn(&[batch, 3, 96, 96], batch as u64, device);
            let (want, a, b) = tch::no_grad(|| {
                (
                    reference.net.forward_t(&x, false).main,
                    folded.net.forward_t(&x, false).main,
                    last.net.forward_t(&to_channels_last(&x), false).main,
                )
            });
            let (ea, eb) = (relative_error(&a, &want), relative_error(&b, &want));
            eprintln!("{layout} batch {batch}: folded {ea:.1e}, channels-last {eb:.1e}");
            assert!(
                ea < 1e-5,
                "{layout} batch {batch}: folded, relative error {ea}"
            );
            assert!(
                eb < 1e-5,
                "{layout} batch {batch}: channels-last, relative error {eb}"
            );
        }
    }
}

#[test]
fn reduced_precision_stays_finite_and_close_on_large_inputs() {
    // Inputs x300 make activations of a few hundred and more: in fp16, LRN's window sums of
    // squares would overflow (zeroing channels) and unfolded batch norm would round its
    // statistics. Both layouts, fp16 and bf16, stay finite and near fp32.
    let device = inception_rcnn::run::device::test_device();
    for layout in [Layout::Paper, Layout::Torchvision] {
        let original = seeded_with_batch_norm_statistics(layout, 5, device);
        let fp32 = prepared_copy(&original, Kind::Float, false);
        let x = local_randn(&[8, 3, 96, 96], 3, device) * 300.0;
        let want = tch::no_grad(|| fp32.net.forward_t(&x, false).main);
        for kind in [Kind::Half, Kind::BFloat16] {
            let m = prepared_copy(&original, kind, false);
            let got =
                tch::no_grad(|| m.net.forward_t(&x.to_kind(kind), false).main).to_kind(Kind::Float);
            let finite = got.isfinite().all().int64_value(&[]) == 1;
            let err = relative_error(&got, &want);
            eprintln!("{layout} {kind:?} x300: relative error {err:.2e}");
            assert!(finite, "{layout} {kind:?}: non-finite logits");
            assert!(err < 0.05, "{layout} {kind:?}: relative error {err}");
        }
    }
}

#[test]
fn lrn_in_half_precision_does_not_overflow() {
    // 300^2 = 90,000 is past fp16's largest value (65,504): squared in fp16, the window sum is
    // infinite and LRN returns zeros. Computed in f32 it returns what f32 does.
    let x = Tensor::full([1, 8, 2, 2], 300.0, (Kind::Float, Device::Cpu));
    let want = local_response_norm(&x);
    let got = local_response_norm(&x.to_kind(Kind::Half));
    assert_eq!(got.kind(), Kind::Half);
    let err = relative_error(&got.to_kind(Kind::Float), &want);
    assert!(err < 1e-3, "relative error {err}");
    assert!(want.abs().min().double_value(&[]) > 10.0);
}

/// A small untrained paper-layout model (background, raccoon, other) and its class names.
fn tiny_three_class_model() -> (Model, Vec<String>) {
    let config = GoogLeNetConfig {
        width: 0.125,
        input_size: 64,
        num_classes: 3,
        ..GoogLeNetConfig::new(Layout::Paper)
    };
    let classes = ["__background__", "raccoon", "other"]
        .map(String::from)
        .to_vec();
    (
        Model::new(&config, classes.clone(), Device::Cpu).unwrap(),
        classes,
    )
}

#[test]
fn model_metadata_that_lies_is_refused_at_load() {
    // These loaded and then scored nothing: every input the same under a subnormal std,
    // the background column reported as a class, two outputs under one name.
    use inception_rcnn::model::weights::{read_tensors, write_tensors};
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let (model, _) = tiny_three_class_model();
    model.save(&good).unwrap();
    let (tensors, meta) = read_tensors(&good).unwrap();
    for (key, value, expected) in [
        ("std", "1e-40,0.224,0.225", "std must be positive"),
        ("std", "1e30,0.224,0.225", "std must be positive"),
        ("mean", "1e30,0.4,0.4", "std must be positive"),
        (
            "classes",
            r#"["__background__","raccoon","raccoon"]"#,
            "as an earlier class is",
        ),
        (
            "classes",
            r#"["__background__","","other"]"#,
            "class 1 has no name",
        ),
    ] {
        let mut lying = meta.clone();
        lying.insert(key.into(), value.into());
        let path = dir.path().join("lying.safetensors");
        let named = tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        write_tensors(&path, named, lying).unwrap();
        let err = Model::load(&path, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains(expected), "{key} = {value}: {err}");
    }
    Model::load(&good, Device::Cpu).unwrap();
}

#[test]
fn the_same_model_saves_to_the_same_bytes() {
    // The metadata is a HashMap: its order changed from save to save, so model files could
    // not be compared or cached by hash.
    let dir = tempfile::tempdir().unwrap();
    let (model, classes) = tiny_three_class_model();
    let saved: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let path = dir.path().join(format!("m{i}.safetensors"));
            model.save(&path).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(saved.windows(2).all(|w| w[0] == w[1]), "the files differ");
    let reloaded = Model::load(&dir.path().join("m0.safetensors"), Device::Cpu).unwrap();
    assert_eq!(reloaded.classes, classes);
}
