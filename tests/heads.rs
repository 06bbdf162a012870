//! R-CNN's heads (`rcnn train-heads`): box regression and class SVMs trained on a real region
//! index of shipped raccoon photos, kept in the model file, and applied by the ensemble and by
//! `rcnn detect`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use eval::{BBox, PixelConvention};
use inception_rcnn::ensemble::{Ensemble, Head};
use inception_rcnn::heads::box_regression::{apply, RegressionFeatures};
use inception_rcnn::model::config::IMAGENET_MEAN;
use inception_rcnn::model::{GoogLeNetConfig, Layout, Model};

use inception_rcnn::detect::warp::WarpParams;
use inception_rcnn::model::config::IMAGENET_STD;
use inception_rcnn::train::batches::Batches;
use inception_rcnn::train::heads::{train_heads, HeadsParams};
use inception_rcnn::train::regions::{Precomputed, RegionIndex, RegionSpec};
use tch::{Device, Kind, Tensor};

mod common;
use common::{root, six_raccoons, train_command, IMAGES, TORCH_THREADS};

fn index(dir: &Path) -> RegionIndex {
    let loaded = six_raccoons();
    let spec = RegionSpec {
        max_proposals: 300,
        max_background: 64,
        ..RegionSpec::new(loaded.images, 3)
    };
    RegionIndex::open_or_build(
        &dir.join("cache"),
        "train",
        &spec,
        &Precomputed::default(),
        &|| {},
    )
    .unwrap()
}

/// The regions' pixels streamed from the photos, as `rcnn train-heads` reads them.
fn stream(index: &RegionIndex) -> Batches<'_> {
    Batches::stream(
        index,
        WarpParams::new(64, IMAGENET_MEAN, IMAGENET_STD),
        64 << 20,
    )
}

fn small_model() -> Model {
    tch::manual_seed(11);
    let config = GoogLeNetConfig {
        width: 0.125,
        input_size: 64,
        num_classes: 2,
        ..GoogLeNetConfig::new(Layout::Paper)
    };
    Model::new(
        &config,
        vec!["__background__".into(), "raccoon".into()],
        Device::Cpu,
    )
    .unwrap()
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap()
}

#[test]
fn heads_fit_their_training_regions_travel_in_the_model_file_and_score_as_defined() {
    tch::set_num_threads(TORCH_THREADS);
    let dir = tempfile::tempdir().unwrap();
    let index = index(dir.path());
    let cache = stream(&index);
    let model_path = dir.path().join("net.safetensors");
    small_model().save(&model_path).unwrap();
    let ensemble = Ensemble::new(
        vec![Model::load(&model_path, Device::Cpu).unwrap()],
        Kind::Float,
    )
    .unwrap();
    // Six positives: R-CNN's C (0.001, for thousands) would leave the SVM all bias.
    let params = HeadsParams {
        lambdas: vec![0.01, 1.0, 100.0],
        hold_out_every: 3,
        batch: 50,
        svm_params: inception_rcnn::heads::svm::SvmParams {
            c: 1.0,
            ..Default::default()
        },
        ..HeadsParams::default()
    };
    let (heads, f) = train_heads(&ensemble, &cache, &params, &|_| {}).unwrap();
    let (features, dim) = (&f.pooled, f.pooled_dim);
    assert_eq!(dim, 128);
    assert_eq!(features.len(), index.len() * dim);
    // Regression reads the 3x3 grid, for the regions of IoU >= 0.6 only.
    assert_eq!(f.regression_dim, 9 * 128);
    assert_eq!(f.regression.len(), f.regression_rows.len() * 9 * 128);

    // Box regression: on the regions it was fitted on, boxes move closer to their raccoon.
    let info = heads.info.box_regression.clone().unwrap();
    assert_eq!(info.lambdas.len(), 3);
    assert!(info.held_out_mse.iter().all(|e| e.is_finite()), "{info:?}");
    assert_eq!(info.features, RegressionFeatures::Grid);
    let r = heads.box_regression.as_ref().unwrap();
    let rows = f.regression_rows.len() as i64;
    let grid = Tensor::from_slice(&f.regression).view([rows, f.regression_dim as i64]);
    let deltas = to_vec(&r.deltas(&grid));
    let (mut before, mut after, mut n) = (0.0, 0.0, 0);
    for (row, &i) in f.regression_rows.iter().enumerate() {
        let region = index.region(i);
        let gt = index.spec.images[region.image as usize].objects[0].bbox;
        let iou = |b: &BBox| b.iou(&gt, PixelConvention::Inclusive);
        assert!(iou(&region.bbox) >= 0.6);
        let d = &deltas[(row * 2 + 1) * 4..(row * 2 + 2) * 4];
        let d = [d[0], d[1], d[2], d[3]].map(f64::from);
        let moved = apply(&region.bbox, d, 1e4, 1e4);
        before += iou(&region.bbox);
        after += iou(&moved);
        n += 1;
    }
    assert_eq!(
        n, info.regions[1],
        "every region of IoU >= 0.6 trains the regressor"
    );
    let (before, after) = (before / n as f64, after / n as f64);
    eprintln!("{n} regions: mean IoU {before:.4} before, {after:.4} after regression");
    assert!(after > before + 0.01, "{before} -> {after}");
    // The background column never moves a box.
    assert!(deltas.chunks(8).all(|d| d[..4] == [0.0; 4]));

    // SVM: ground-truth boxes are the positives and score above the mined negatives.
    let svm = heads.info.svm.clone().unwrap();
    let report = &svm.classes[1];
    assert_eq!(report.positives, 6);
    assert!(report.candidates > 300, "{report:?}");
    let all = Tensor::from_slice(features).view([index.len() as i64, dim as i64]);
    let margins = to_vec(&heads.svm.as_ref().unwrap().margins(&all));
    let mean = |f: &dyn Fn(usize) -> bool| {
        let v: Vec<f32> = (0..index.len())
            .filter(|&i| f(i))
            .map(|i| margins[i * 2 + 1])
            .collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    let positives = mean(&|i| index.region(i).iou >= 1.0);
    let negatives = mean(&|i| index.region(i).iou < 0.3);
    assert!(positives > negatives + 0.5, "{positives} vs {negatives}");

    // Into the model file and back, exactly.
    let mut model = Model::load(&model_path, Device::Cpu).unwrap();
    model.heads = heads;
    let with_heads = dir.path().join("heads.safetensors");
    model.save(&with_heads).unwrap();
    let back = Model::load(&with_heads, Device::Cpu).unwrap();
    assert_eq!(back.heads.info, model.heads.info);
    let same = |a: &Tensor, b: &Tensor| to_vec(a) == to_vec(b);
    let (r0, r1) = (
        model.heads.box_regression.as_ref().unwrap(),
        back.heads.box_regression.as_ref().unwrap(),
    );
    assert!(same(&r0.weight, &r1.weight) && same(&r0.bias, &r1.bias));
    let (s0, s1) = (
        model.heads.svm.as_ref().unwrap(),
        back.heads.svm.as_ref().unwrap(),
    );
    assert!(same(&s0.weight, &s1.weight) && same(&s0.bias, &s1.bias));

    // The ensemble's heads: sigmoid of the margin and the regressor's deltas, by hand.
    let mut ensemble = Ensemble::new(vec![back], Kind::Float).unwrap();
    assert!(ensemble.use_heads(Head::Svm, true).unwrap());
    let picks: Vec<(usize, bool)> = (0..5).map(|i| (i * 7, false)).collect();
    let (crops, _) = cache
        .crops(&picks, &cache.normaliser(Device::Cpu), Device::Cpu)
        .unwrap();
    let (scores, deltas) = ensemble.classify(&crops);
    let (scores, deltas) = (to_vec(&scores), to_vec(&deltas.unwrap()));
    let out = tch::no_grad(|| ensemble.models[0].net.forward_t(&crops, false));
    let (grid, gdim) = (to_vec(&out.grid), 9 * dim);
    let (sw, sb) = (to_vec(&s0.weight), to_vec(&s0.bias));
    let (rw, rb) = (to_vec(&r0.weight), to_vec(&r0.bias));
    for (k, &(i, _)) in picks.iter().enumerate() {
        let x = &features[i * dim..(i + 1) * dim];
        for c in 0..2 {
            let m: f32 = sb[c] + (0..dim).map(|j| x[j] * sw[j * 2 + c]).sum::<f32>();
            let want = 1.0 / (1.0 + (-m).exp());
            assert!(
                (scores[k * 2 + c] - want).abs() < 1e-4,
                "region {i} class {c}"
            );
            let g = &grid[k * gdim..(k + 1) * gdim];
            for t in 0..4 {
                let col = c * 4 + t;
                let d: f32 = rb[col] + (0..gdim).map(|j| g[j] * rw[j * 8 + col]).sum::<f32>();
                assert!((deltas[(k * 2 + c) * 4 + t] - d).abs() < 1e-3, "region {i}");
            }
        }
    }
    // A model without SVMs cannot score with them, and says how to get them.
    let mut plain = Ensemble::new(
        vec![Model::load(&model_path, Device::Cpu).unwrap()],
        Kind::Float,
    )
    .unwrap();
    let err = plain.use_heads(Head::Svm, true).unwrap_err().to_string();
    assert!(err.contains("train-heads"), "{err}");
    // Without regressors, regression is simply off.
    assert!(!plain.use_heads(Head::Softmax, true).unwrap());

    // A head that diverged is never saved; a file whose heads do not fit the network is refused
    // with the tensor's name.
    let mut bad = Model::load(&with_heads, Device::Cpu).unwrap();
    let r = bad.heads.box_regression.as_mut().unwrap();
    let _ = r.bias.get(3).fill_(f64::NAN);
    let err = bad
        .save(&dir.path().join("nan.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("heads.box_regression.bias"), "{err}");
    let (mut tensors, metadata) =
        inception_rcnn::model::weights::read_tensors(&with_heads).unwrap();
    tensors.insert(
        "heads.svm.bias".into(),
        Tensor::zeros([3], (Kind::Float, Device::Cpu)),
    );
    let wrong = dir.path().join("wrong.safetensors");
    inception_rcnn::model::weights::write_tensors(&wrong, tensors.into_iter().collect(), metadata)
        .unwrap();
    let err = Model::load(&wrong, Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("heads.svm.bias") && err.contains("[2]"),
        "{err}"
    );
}

fn rcnn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rcnn"));
    c.args(["--threads", &TORCH_THREADS.to_string()]);
    c
}

fn detect(model: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let o = rcnn()
        .arg("detect")
        .arg(root().join("data/raccoon/images/raccoon-155.jpg"))
        .args([
            "--max-proposals",
            "100",
            "--device",
            "cpu",
            "--format",
            "csv",
        ])
        .args(extra)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out.join("detections.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Two training steps on `images` into `run` (beside it, their split), then `rcnn
/// train-heads` over the run; its output.
fn train_then_fit_heads(images: &[&str], run: &Path) -> std::process::Output {
    let split = run.with_extension("split.txt");
    std::fs::write(
        &split,
        images.iter().map(|k| format!("{k}\n")).collect::<String>(),
    )
    .unwrap();
    let o = train_command(&split, run, false)
        .args(["--steps", "2", "--checkpoint-every", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    rcnn()
        .args(["train-heads", "--device", "cpu", "--svm-c", "1", "--run"])
        .arg(run)
        .output()
        .unwrap()
}

#[test]
fn train_heads_then_detect_with_and_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let data = root().join("data/raccoon");
    let o = train_then_fit_heads(&IMAGES, &run);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("box regression on Grid features: lambda")
            && stdout.contains("svm raccoon: 6 positives"),
        "{stdout}"
    );
    // The network it reads is never overwritten.
    let o = rcnn()
        .args(["train-heads", "--device", "cpu", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(run.join("model.safetensors"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("model.safetensors"),
        "{stderr}"
    );
    let heads: PathBuf = run.join("model-heads.safetensors");
    let plain = run.join("model.safetensors");
    // The model file with heads reads the network's outputs unchanged: softmax without
    // regression equals the plain network's detections, line for line.
    let a = detect(&plain, &dir.path().join("a"), &[]);
    let b = detect(&heads, &dir.path().join("b"), &["--no-bbox-reg"]);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    // Regression moves boxes, not scores.
    let c = detect(&heads, &dir.path().join("c"), &[]);
    let scores = |v: &[String]| {
        let mut s: Vec<String> = v
            .iter()
            .map(|l| l.split(',').nth(2).unwrap().to_string())
            .collect();
        s.sort();
        s
    };
    assert_ne!(a, c);
    // The SVM head scores differently; with a model without SVMs it is refused, by name.
    let d = detect(&heads, &dir.path().join("d"), &["--head", "svm"]);
    assert_ne!(scores(&c), scores(&d));
    let o = rcnn()
        .arg("detect")
        .arg(data.join("images/raccoon-155.jpg"))
        .args(["--device", "cpu", "--head", "svm", "--model"])
        .arg(&plain)
        .arg("--out")
        .arg(dir.path().join("e"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("no class SVMs"),
        "{stderr}"
    );
}

#[test]
fn a_set_too_small_to_hold_images_out_says_its_penalty_is_a_default() {
    // With three images none is held out (every fifth is): each held-out error was NaN and
    // lambda 1000 was taken without a word.
    let dir = tempfile::tempdir().unwrap();
    let o = train_then_fit_heads(&IMAGES[..3], &dir.path().join("run"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("no held-out regions to choose a penalty on")
            && stderr.contains("using lambda 1000"),
        "{stderr}"
    );
}
