//! `torch.save` files read without Python: the zip format and the legacy stream, plain dicts,
//! OrderedDicts (what `model.state_dict()` returns and torchvision publishes) and checkpoints,
//! against values recomputed here from the formulas of scripts/make_pth_fixtures.py.

use std::path::{Path, PathBuf};

use inception_rcnn::model::pth;
use inception_rcnn::model::weights::read_state_dict;
use tch::{Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pth")
        .join(name)
}

fn f32s(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).unwrap()
}

#[test]
fn every_saved_form_reads_to_the_same_values() {
    for name in [
        "zip_ordered.pth",
        "zip_checkpoint.pth",
        "legacy_ordered.pth",
        "legacy_checkpoint.pth",
    ] {
        let t = read_state_dict(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.len(), 10, "{name}");
        let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        assert_eq!(t["a"].size(), vec![3, 4], "{name}");
        assert_eq!(t["a"].kind(), Kind::Float);
        assert_eq!(f32s(&t["a"]), a, "{name}");
        // The transposed view shares a's storage with strides (1, 4).
        assert_eq!(t["a_t"].size(), vec![4, 3], "{name}");
        let a_t: Vec<f32> = (0..12).map(|k| a[(k % 3) * 4 + k / 3]).collect();
        assert_eq!(f32s(&t["a_t"]), a_t, "{name}");
        assert_eq!(f32s(&t["offset"]), vec![5.0, 6.0, 7.0, 8.0], "{name}");
        assert_eq!(t["half"].kind(), Kind::Half);
        assert_eq!(
            f32s(&t["half"]),
            vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25],
            "{name}"
        );
        assert_eq!(t["bf16"].kind(), Kind::BFloat16);
        assert_eq!(f32s(&t["bf16"]), vec![-1.5, -0.5, 0.5, 1.5], "{name}");
        assert_eq!(t["f64"].kind(), Kind::Double);
        assert_eq!(
            Vec::<f64>::try_from(&t["f64"]).unwrap(),
            vec![1e-300, -2.5, 3.0]
        );
        assert_eq!(
            Vec::<i64>::try_from(&t["long"]).unwrap(),
            vec![-(1i64 << 40), 7]
        );
        assert_eq!(t["bool"].kind(), Kind::Bool);
        assert_eq!(
            Vec::<i64>::try_from(t["bool"].to_kind(Kind::Int64)).unwrap(),
            vec![1, 0, 1]
        );
        assert_eq!(t["empty"].size(), vec![0, 3]);
        assert_eq!(f32s(&t["param"]), vec![0.25; 4], "{name}");
    }
}

#[test]
fn torchvisions_ordered_dict_imports_through_the_cli() {
    // The parity fixture is saved exactly as torchvision's files are: torch.save(state_dict()).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tv.safetensors");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/googlenet_parity/googlenet_tv10_f16.pth");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args(["import-weights", "--device", "cpu", "--out"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("10 classes"), "{stdout}");
    assert!(out.is_file());
}

#[test]
fn truncated_and_corrupted_files_are_errors_not_panics() {
    for name in ["zip_ordered.pth", "legacy_ordered.pth"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in (0..bytes.len()).step_by(7) {
            assert!(pth::read(&bytes[..cut]).is_err(), "{name} cut at {cut}");
        }
        // Flip each byte in turn: a result may be Ok (payload bytes), but never a panic, and
        // every tensor it gives has the shape the file declares.
        for i in (0..bytes.len()).step_by(3) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            if let Ok(t) = pth::read(&b) {
                for v in t.values() {
                    assert!(v.numel() < 1000);
                }
            }
        }
    }
}

#[test]
fn a_tensor_reaching_past_its_storage_is_refused() {
    let bytes = std::fs::read(fixture("legacy_ordered.pth")).unwrap();
    // `a` is rebuilt with size (3, 4): K\x03K\x04\x86. Make it (30, 4).
    let at = bytes
        .windows(5)
        .position(|w| w == b"K\x03K\x04\x86")
        .unwrap();
    let mut b = bytes.clone();
    b[at + 1] = 30;
    let err = pth::read(&b).unwrap_err().to_string();
    assert!(err.contains("reach past its storage"), "{err}");
}

#[test]
fn importing_one_of_our_model_files_keeps_its_metadata() {
    use inception_rcnn::model::{GoogLeNetConfig, Layout, Model};
    let dir = tempfile::tempdir().unwrap();
    let config = GoogLeNetConfig {
        width: 0.25,
        input_size: 96,
        num_classes: 3,
        aux_logits: false,
        ..GoogLeNetConfig::new(Layout::Paper)
    };
    let classes: Vec<String> = ["__background__", "raccoon", "cell"]
        .map(String::from)
        .to_vec();
    let src = dir.path().join("ours.safetensors");
    Model::new(&config, classes.clone(), tch::Device::Cpu)
        .unwrap()
        .save(&src)
        .unwrap();
    let out = dir.path().join("again.safetensors");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args(["import-weights", "--device", "cpu", "--out"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (back, names) = Model::read_config(&out).unwrap();
    assert_eq!(back, config);
    assert_eq!(names, classes);
}

#[test]
fn files_that_are_not_models_are_refused_from_their_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // /dev/zero never ends: `--model /dev/zero` once read 4.3 GB.
    let zero = dir.path().join("zero.pth");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let err = read_state_dict(&zero).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let err = inception_rcnn::model::Model::load(Path::new("/dev/zero"), tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a regular file"), "{err}");
    // 6 GB of nothing (sparse): refused on its first bytes, under either extension.
    for name in ["big.pth", "big.safetensors"] {
        let big = dir.path().join(name);
        std::fs::File::create(&big)
            .unwrap()
            .set_len(6 << 30)
            .unwrap();
        let err = read_state_dict(&big).unwrap_err().to_string();
        assert!(err.contains("not a"), "{name}: {err}");
    }
}
