//! `rcnn classify` against torchvision: the parity fixture's GoogLeNet on three real photos,
//! every crop of 1, 10 and 144 and their averages equal to PyTorch's to 1e-4
//! (tests/fixtures/classify, made by scripts/make_classify_fixture.py).

use std::path::{Path, PathBuf};
use std::process::Command;

use inception_rcnn::classifier::{rows, Ensemble};
use inception_rcnn::classify::{classify, make_crops, plan, top_k, Classified, ClassifyParams, Crops};
use inception_rcnn::decode::decode;
use inception_rcnn::device_stage::upload;
use inception_rcnn::model::weights::{infer_config, load_state_dict, read_state_dict};
use inception_rcnn::model::Model;
use serde_json::Value;
use tch::{Device, Kind};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn weights() -> PathBuf {
    root().join("tests/fixtures/googlenet_parity/googlenet_tv10_f16.pth")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/classify/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn photos() -> Vec<PathBuf> {
    expected()["meta"]["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| root().join("tests/fixtures/classify").join(p["png"].as_str().unwrap()))
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn model(transform_input: bool) -> Model {
    let path = weights();
    let tensors = read_state_dict(&path).unwrap();
    let mut config = infer_config(&tensors, &path).unwrap();
    config.transform_input = transform_input;
    let mut model = Model::new(&config, Vec::new(), Device::Cpu).unwrap();
    load_state_dict(&mut model.vs, &tensors, &path).unwrap();
    model
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn top5(p: &[f32]) -> Vec<usize> {
    top_k(p, 5).into_iter().map(|(c, _)| c).collect()
}

#[test]
fn every_crop_and_every_mean_equals_torchvisions() {
    tch::set_num_threads(2);
    let want = expected();
    let ensemble = Ensemble::of_image_classifiers(vec![model(true)], Kind::Float, false).unwrap();
    let images = photos();
    for crops in [Crops::One, Crops::Ten, Crops::Paper] {
        // Each crop on its own, in torchvision's order: a crop taken from the wrong place
        // would hide in a mean of 144 but not here.
        for image in &images {
            let name = image.file_name().unwrap().to_str().unwrap();
            let rgb = decode(image).unwrap();
            let (h, w, _) = rgb.dim();
            let specs = plan(h as i64, w as i64, crops, 224);
            let pixels = make_crops(&upload(&rgb, Device::Cpu), &specs, 224);
            let ours = rows(&tch::no_grad(|| ensemble.image_scores(&pixels)));
            let theirs = want["per_crop_transform_input_true"][crops.name()][name].as_array().unwrap();
            assert_eq!(ours.len(), theirs.len(), "{name}: {} crops", crops.name());
            for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
                let d = max_difference(o, &floats(t));
                assert!(d < 1e-4, "{name}, {} crops, crop {i}: {d}", crops.name());
            }
        }
        // The pipeline's means: crops of the three photos share batches of 50 (padded at the end).
        let params = ClassifyParams {
            crops,
            batch: 50,
            workers: 2,
        };
        let mut seen = 0;
        classify(&images, &ensemble, &params, |c| {
            let Classified::Done { image, probabilities } = c else {
                panic!("a photo failed")
            };
            assert_eq!(image, images[seen], "in order");
            seen += 1;
            let name = image.file_name().unwrap().to_str().unwrap();
            let theirs = floats(&want["probabilities"]["transform_input_true"][crops.name()][name]);
            let d = max_difference(&probabilities, &theirs);
            assert!(d < 1e-4, "{name}, {} crops: mean differs by {d}", crops.name());
            assert_eq!(top5(&probabilities), top5(&theirs), "{name}, {} crops", crops.name());
        });
        assert_eq!(seen, 3);
    }
}

fn rcnn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rcnn"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
