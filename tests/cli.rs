//! The `rcnn` binary end to end: help, model-info, import-weights and their errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rcnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("rcnn runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/googlenet_parity")
        .join(name)
}

#[test]
fn help_lists_the_subcommands() {
    let o = rcnn(&["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for sub in ["model-info", "import-weights", "map-eval", "bench", "env"] {
        assert!(text.contains(sub), "{sub} missing from:\n{text}");
    }
    let o = rcnn(&["bench", "classifier", "--help"]);
    assert!(stdout(&o).contains("--batch-sizes") && stdout(&o).contains("--device"));
}

#[test]
fn model_info_prints_torchvisions_parameter_count() {
    let o = rcnn(&[
        "model-info",
        "--layout",
        "torchvision",
        "--num-classes",
        "1000",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(total.contains("6,624,904"), "{total}");
    assert!(text
        .lines()
        .any(|l| l.starts_with("inception5b") && l.contains("7x7x1024")));
    // One log line says which device and how many threads.
    assert!(
        stderr(&o).contains("device cpu (") && stderr(&o).contains("CPU threads"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn model_info_shows_table_1_shapes_for_the_paper_layout() {
    let o = rcnn(&["model-info", "--layout", "paper", "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for (stage, shape) in [
        ("inception3a", "28x28x256"),
        ("inception4e", "14x14x832"),
        ("inception5b", "7x7x1024"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(stage) && l.contains(shape)),
            "{stage} {shape}:\n{text}"
        );
    }
}

#[test]
fn import_weights_writes_a_self_describing_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tv.safetensors");
    let pth = fixture("googlenet_tv10_f16.pth");
    let o = rcnn(&[
        "import-weights",
        pth.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("torchvision layout, 10 classes"),
        "{}",
        stdout(&o)
    );
    // model-info reads layout, classes and input size from the file alone.
    let o = rcnn(&[
        "model-info",
        "--model",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with(
        "GoogLeNet, torchvision layout, 10 classes, width 1, input 224x224x3, transform_input"
    ));
    assert!(text
        .lines()
        .any(|l| l.starts_with("total") && l.contains("5,610,154")));
}

#[test]
fn import_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    // Not a state dict at all.
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a zip").unwrap();
    let o = rcnn(&[
        "import-weights",
        junk.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("junk.pth") && stderr(&o).contains("not a torch.save file"),
        "{}",
        stderr(&o)
    );
    // A missing file.
    let o = rcnn(&[
        "import-weights",
        "/nonexistent/w.safetensors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/w.safetensors"),
        "{}",
        stderr(&o)
    );
    // A class list of the wrong length.
    let classes = dir.path().join("classes.txt");
    std::fs::write(&classes, "cat\ndog\n").unwrap();
    let pth = fixture("googlenet_tv10_f16.pth");
    let o = rcnn(&[
        "import-weights",
        pth.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--classes",
        classes.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("2 class names, but the classifier has 10 outputs"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "no model file is written on error");
}

#[test]
fn asking_for_cuda_without_a_gpu_is_a_clear_error() {
    let o = rcnn(&["model-info", "--device", "cuda:0"]);
    if o.status.success() {
        return; // a machine with a GPU
    }
    assert!(
        stderr(&o).contains("cuda:0 was asked for but CUDA is not available"),
        "{}",
        stderr(&o)
    );
    let o = rcnn(&["model-info", "--device", "tpu"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown device `tpu`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bench_classifier_prints_a_row_per_batch_size() {
    let o = rcnn(&[
        "bench",
        "classifier",
        "--device",
        "cpu",
        "--layouts",
        "torchvision",
        "--batch-sizes",
        "1,2",
        "--width",
        "0.25",
        "--input-size",
        "64",
        "--min-seconds",
        "0",
        "--warmup",
        "1",
        "--repeats",
        "1",
        "--reference",
        "none",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<_> = stdout(&o)
        .lines()
        .filter(|l| l.starts_with("torchvision"))
        .map(String::from)
        .collect();
    assert_eq!(rows.len(), 2, "{}", stdout(&o));
    for (row, batch) in rows.iter().zip([1, 2]) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], "fp32");
        assert_eq!(cols[2], "NCHW", "the CPU's default memory order");
        assert_eq!(cols[3].parse::<i64>().unwrap(), batch);
        assert!(cols[4].parse::<f64>().unwrap() > 0.0);
    }
}

#[test]
fn rcnn_map_eval_reproduces_the_voc_toy_set() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("eval/tests/fixtures/eval-reference/voc-toy-cat");
    let o = rcnn(&[
        "map-eval",
        "--gt",
        fx.join("gts").to_str().unwrap(),
        "--dets",
        fx.join("dets").to_str().unwrap(),
        "--metric",
        "voc07",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("mean AP   0.8864 over 1 classes"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn proposals_on_real_photos_with_recall_output_and_plot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // A list file of two raccoon photos, a corrupt image beside them.
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff not really").unwrap();
    let list = dir.path().join("list.txt");
    let images = root.join("data/raccoon/images");
    std::fs::write(
        &list,
        format!(
            "{}\n{}\n{}\n",
            images.join("raccoon-1.jpg").display(),
            images.join("raccoon-10.jpg").display(),
            corrupt.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("p.csv");
    let plot = dir.path().join("recall.png");
    let o = rcnn(&[
        "proposals",
        list.to_str().unwrap(),
        "--gt",
        root.join("data/raccoon/annotations").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("2 images (1 skipped), selective search fast x2 (ours)"),
        "{text}"
    );
    assert!(
        stderr(&o).contains("corrupt.jpg"),
        "the bad image is named: {}",
        stderr(&o)
    );
    // Both raccoons are found at IoU 0.5 with all proposals.
    let all = text.lines().find(|l| l.starts_with("all ")).unwrap();
    let cols: Vec<f64> = all
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(cols[1], 1.0, "{all}");
    assert!(cols[3] > 0.7, "MABO {all}");
    // The CSV: a header, then ranked boxes inside each image.
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("image,rank,xmin,ymin,xmax,ymax"));
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!((first[0], first[1]), ("raccoon-1", "1"));
    for l in csv.lines().skip(1) {
        let f: Vec<f64> = l.split(',').skip(2).map(|v| v.parse().unwrap()).collect();
        assert!(
            f[0] >= 0.0 && f[1] >= 0.0 && f[0] <= f[2] && f[1] <= f[3],
            "{l}"
        );
    }
    assert_eq!(&std::fs::read(&plot).unwrap()[1..4], b"PNG");
}

#[test]
fn numeric_flags_outside_their_meaning_are_refused_at_parse_time() {
    let detect = ["detect", "x.jpg", "--model", "m", "--out", "o"];
    let train = ["train", "--images", "i", "--annotations", "a", "--out", "o"];
    let visualize = ["visualize", "i", "--dets", "d", "--out", "o"];
    let map_eval = ["map-eval", "--gt", "g", "--dets", "d"];
    for (command, flag, range) in [
        (&detect[..], &["--nms-iou", "1.5"][..], "(0, 1]"),
        (&detect, &["--nms-iou", "NaN"], "(0, 1]"),
        (&detect, &["--score-threshold", "NaN"], "[0, 1]"),
        (&detect, &["--batch", "0"], "[1, 65536]"),
        (&detect, &["--batch", "18446744073709551615"], "[1, 65536]"),
        (&train, &["--lr", "NaN"], "(0, 10]"),
        (&train, &["--steps", "0"], "[1, 1000000000]"),
        (&train, &["--momentum=-0.5"], "[0, 1)"),
        (&train, &["--polyak", "2"], "(0, 1]"),
        (&visualize, &["--iou", "7"], "(0, 1]"),
        (&["model-info"], &["--threads", "100000"], "[1, 1024]"),
        (&["model-info"], &["--input-size", "4096"], "[32, 1024]"),
        (&["model-info"], &["--width", "8"], "(0, 4]"),
        (
            &["model-info"],
            &["--num-classes", "100000000000"],
            "[1, 100000]",
        ),
        (&["proposals", "i"], &["--width", "100000"], "[32, 4096]"),
        (&["proposals", "i"], &["--scale", "0"], "(0, 10000]"),
        (&map_eval, &["--iou", "NaN"], "(0, 1]"),
    ] {
        let args: Vec<&str> = command.iter().chain(flag).copied().collect();
        let o = rcnn(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(range), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_model_that_cannot_score_is_refused_at_load() {
    use inception_rcnn::model::{GoogLeNetConfig, Layout, Model};
    let dir = tempfile::tempdir().unwrap();
    let config = GoogLeNetConfig {
        width: 0.125,
        input_size: 64,
        num_classes: 3,
        ..GoogLeNetConfig::new(Layout::Paper)
    };
    let classes = |v: [&str; 3]| v.map(String::from).to_vec();
    // Background in second place: refused when saved, and so never written.
    let m = Model::new(
        &config,
        classes(["cat", "__background__", "dog"]),
        tch::Device::Cpu,
    )
    .unwrap();
    let err = m
        .save(&dir.path().join("bg.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("background class can only be the first"),
        "{err}"
    );
    // A NaN weight (a diverged run) and a zero std: written behind our back, refused at load.
    let m = Model::new(
        &config,
        classes(["__background__", "cat", "dog"]),
        tch::Device::Cpu,
    )
    .unwrap();
    let good = dir.path().join("good.safetensors");
    m.save(&good).unwrap();
    let (mut tensors, mut meta) = inception_rcnn::model::weights::read_tensors(&good).unwrap();
    let fc = tensors.get_mut("fc.weight").unwrap();
    let _ = fc.get(0).get(0).fill_(f64::NAN);
    let named: Vec<(String, tch::Tensor)> = tensors.into_iter().collect();
    let nan = dir.path().join("nan.safetensors");
    inception_rcnn::model::weights::write_tensors(&nan, named, meta.clone()).unwrap();
    let err = Model::load(&nan, tch::Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("fc.weight holds NaN"), "{err}");
    meta.insert("std".into(), "0.229,0,0.225".into());
    let (tensors, _) = inception_rcnn::model::weights::read_tensors(&good).unwrap();
    let zero = dir.path().join("zero-std.safetensors");
    inception_rcnn::model::weights::write_tensors(
        &zero,
        tensors.into_iter().collect(),
        meta.clone(),
    )
    .unwrap();
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/raccoon/images/raccoon-1.jpg");
    let o = rcnn(&[
        "detect",
        photo.to_str().unwrap(),
        "--model",
        zero.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("std must be positive"),
        "{}",
        stderr(&o)
    );
    // A model file claiming 10^11 classes is refused before anything is allocated.
    meta.insert("num_classes".into(), "100000000000".into());
    let (tensors, _) = inception_rcnn::model::weights::read_tensors(&good).unwrap();
    let huge = dir.path().join("huge.safetensors");
    inception_rcnn::model::weights::write_tensors(&huge, tensors.into_iter().collect(), meta)
        .unwrap();
    let err = Model::load(&huge, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("num_classes 100000000000"), "{err}");
}

#[test]
fn a_1000_class_state_dict_imports_with_ilsvrc2012s_names() {
    // torchvision's ImageNet weights were stored as class0..class999, so classify printed
    // `class871`. A small torchvision-layout network with 1000 outputs stands in for them.
    use inception_rcnn::model::{GoogLeNetConfig, Layout, Model};
    let dir = tempfile::tempdir().unwrap();
    let config = GoogLeNetConfig {
        width: 0.125,
        input_size: 64,
        num_classes: 1000,
        ..GoogLeNetConfig::new(Layout::Torchvision)
    };
    let model = Model::new(&config, Vec::new(), tch::Device::Cpu).unwrap();
    let export = dir.path().join("export.safetensors");
    inception_rcnn::model::weights::write_tensors(
        &export,
        model.vs.variables().into_iter().collect(),
        Default::default(),
    )
    .unwrap();
    let out = dir.path().join("imported.safetensors");
    let o = rcnn(&[
        "import-weights",
        export.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--input-size",
        "64",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, classes) = Model::read_config(&out).unwrap();
    assert_eq!(classes.len(), 1000);
    assert_eq!(
        (classes[0].as_str(), classes[871].as_str()),
        ("tench", "trimaran")
    );
    // Its two cranes (the bird, the machine) stay two classes.
    assert_eq!(
        (classes[134].as_str(), classes[517].as_str()),
        ("crane (n02012849)", "crane (n03126707)")
    );
}
