//! `rcnn train` on real shipped photos with a tiny network: the loss falls, the averaged
//! weights saved reload to the same outputs, and a killed run resumes on the same schedule.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use inception_rcnn::detect::warp::WarpParams;
use inception_rcnn::model::config::{IMAGENET_MEAN, IMAGENET_STD};
use inception_rcnn::model::precision::Precision;
use inception_rcnn::model::{GoogLeNetConfig, Layout, Model};
use inception_rcnn::train::batches::{Batches, PixelSource};
use inception_rcnn::train::data::{load_images, SplitEntry};
use inception_rcnn::train::regions::{Precomputed, RegionIndex, RegionSpec};
use inception_rcnn::train::{train, Event, Init, Recipe, TrainParams};
use tch::{Device, Kind, Tensor};

mod common;
use common::{root, six_raccoons, train_command, IMAGES, TORCH_THREADS};

/// Where the library-level tests train: `RCNN_TEST_DEVICE` (scripts/gpu-check.sh), else the CPU.
fn device() -> Device {
    inception_rcnn::run::device::test_device()
}

fn write_split(dir: &Path) -> PathBuf {
    let path = dir.join("split.txt");
    std::fs::write(&path, IMAGES.map(|k| format!("{k}.jpg\n")).concat()).unwrap();
    path
}

/// R-CNN's recipe for a network of an eighth of the width at 80 px with two outputs, over
/// `regions` indexed regions, with `positives` and `background` regions a step.
fn tiny_recipe(regions: usize, seed: u64, positives: usize, background: usize) -> Recipe {
    Recipe {
        config: GoogLeNetConfig {
            width: 0.125,
            input_size: 80,
            num_classes: 2,
            aux_logits: true,
            ..GoogLeNetConfig::new(Layout::Paper)
        },
        classes: vec!["__background__".into(), "raccoon".into()],
        init: Init::Scratch,
        positives,
        background,
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 0.0002,
        lr_decay: 0.96,
        lr_every_epochs: 1.0,
        aux_weight: 0.3,
        polyak: 0.999,
        flip: true,
        seed,
        regions,
        pixels: PixelSource::Stream,
    }
}

#[test]
fn tiny_model_learns_and_its_averaged_weights_reload_to_the_same_outputs() {
    tch::set_num_threads(TORCH_THREADS);
    let dir = tempfile::tempdir().unwrap();
    let loaded = six_raccoons();
    assert_eq!(loaded.images.len(), 6);
    assert_eq!(loaded.classes.names, ["raccoon"]);
    assert!(loaded
        .images
        .iter()
        .all(|i| i.objects.len() == 1 && i.objects[0].label == 1));
    let spec = RegionSpec {
        max_proposals: 300,
        max_background: 48,
        ..RegionSpec::new(loaded.images.clone(), 3)
    };
    let none = Precomputed::default();
    let index =
        RegionIndex::open_or_build(&dir.path().join("cache"), "train", &spec, &none, &|| {})
            .unwrap();
    // Every ground-truth box is a positive of its own, and every image gave 48 background.
    let gt_regions = index.iter().filter(|r| r.iou == 1.0).count();
    assert!(gt_regions >= 6, "{gt_regions}");
    assert_eq!(index.background(), 6 * 48);
    assert!(index.iter().all(|r| (r.label == 1) == (r.iou >= 0.5)));
    // 28 bytes a region on disk, not its pixels.
    assert_eq!(
        std::fs::metadata(dir.path().join("cache/train.regions"))
            .unwrap()
            .len(),
        28 * index.len() as u64
    );
    // Opening it again reuses it: same regions.
    let again =
        RegionIndex::open_or_build(&dir.path().join("cache"), "train", &spec, &none, &|| {
            panic!("the index was rebuilt")
        })
        .unwrap();
    assert_eq!(
        again.iter().collect::<Vec<_>>(),
        index.iter().collect::<Vec<_>>()
    );
    let warp = WarpParams::new(80, IMAGENET_MEAN, IMAGENET_STD);
    let cache = Batches::stream(&index, warp, 64 << 20);
    let norm = cache.normaliser(device());

    // Streamed crops (the device warp) are the pixel cache's (OpenCV's, kept as bytes) within
    // a grey level's rounding, flipped alike.
    let pixels = Batches::cached(&index, warp, &|| {}).unwrap();
    let some: Vec<(usize, bool)> = (0..24)
        .map(|i| (i * 13 % index.len(), i % 3 == 0))
        .collect();
    let (a, la) = cache.crops(&some, &norm, device()).unwrap();
    let (b, lb) = pixels.crops(&some, &norm, device()).unwrap();
    assert_eq!(
        Vec::<i64>::try_from(&la).unwrap(),
        Vec::<i64>::try_from(&lb).unwrap()
    );
    let grey = 1.0 / (255.0 * IMAGENET_STD[2] as f64);
    let diff = (&a - &b).abs();
    let (max, mean) = (
        diff.max().double_value(&[]),
        diff.mean(Kind::Float).double_value(&[]),
    );
    assert!(
        max <= 1.01 * grey && mean < 0.3 * grey,
        "max {max}, mean {mean} (a grey level: {grey})"
    );
    assert_eq!(cache.decoded(), 4, "four images drawn, each decoded once");

    let params = TrainParams {
        recipe: tiny_recipe(index.len(), 7, 8, 24),
        steps: 60,
        checkpoint_every: 30,
        log_every: 10,
        resume: false,
        precision: Precision::Fp32,
    };
    let out = dir.path().join("run");
    let mut losses = Vec::new();
    let trained = train(&cache, None, &params, &out, device(), |e| {
        if let Event::Step { loss, .. } = e {
            losses.push(loss);
        }
    })
    .unwrap();
    assert_eq!(losses.len(), 60);
    // 60 steps of 32 regions decoded each of the six images once: the RAM cache holds them.
    assert_eq!(cache.decoded(), 6);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&losses[..10]), mean(&losses[50..]));
    assert!(
        last < 0.8 * first,
        "the loss did not fall: first ten steps {first:.4}, last ten {last:.4}"
    );

    // The saved model: the averaged weights, without the auxiliary heads, same outputs.
    let saved = Model::load(&out.join("model.safetensors"), device()).unwrap();
    assert!(!saved.config().aux_logits);
    assert_eq!(saved.classes, ["__background__", "raccoon"]);
    let picks: Vec<(usize, bool)> = (0..16).map(|i| (i * 7 % index.len(), false)).collect();
    let (x, _) = cache.crops(&picks, &norm, device()).unwrap();
    let a = tch::no_grad(|| trained.net.forward_t(&x, false).main);
    let b = tch::no_grad(|| saved.net.forward_t(&x, false).main);
    let diff = (&a - &b).abs().max().double_value(&[]);
    assert_eq!(diff, 0.0, "the reloaded model's logits differ by {diff}");
    // And they are not the untrained network's: the average moved.
    tch::manual_seed(7);
    let fresh = Model::new(saved.config(), saved.classes.clone(), device()).unwrap();
    let c = tch::no_grad(|| fresh.net.forward_t(&x, false).main);
    assert!((&a - &c).abs().max().double_value(&[]) > 1e-3);
    // The trained network tells raccoons from background on its own training regions better
    // than chance: mean raccoon probability higher on positives than on background.
    let pos: Vec<(usize, bool)> = (0..index.len())
        .filter(|&i| index.region(i).label == 1)
        .map(|i| (i, false))
        .collect();
    let bg: Vec<(usize, bool)> = (0..index.len())
        .filter(|&i| index.region(i).label == 0)
        .map(|i| (i, false))
        .collect();
    let p_raccoon = |picks: &[(usize, bool)]| {
        let (x, _) = cache.crops(picks, &norm, device()).unwrap();
        tch::no_grad(|| {
            saved
                .net
                .forward_t(&x, false)
                .main
                .softmax(1, Kind::Float)
                .select(1, 1)
                .mean(Kind::Float)
                .double_value(&[])
        })
    };
    let (on_pos, on_bg) = (p_raccoon(&pos), p_raccoon(&bg));
    assert!(
        on_pos > on_bg,
        "P(raccoon): {on_pos:.4} on positives, {on_bg:.4} on background"
    );
    // The log has a line every ten steps and the two checkpoints.
    let log = std::fs::read_to_string(out.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 7, "{log}");
    assert!(out.join("loss.png").is_file() && out.join("accuracy.png").is_file());

    // Mixed precision: bf16 and fp16 activations with f32 master weights (fp16 with its loss
    // scale) learn about as well as f32 over the same steps, and what they save is f32.
    let fp32_last = last;
    for precision in [Precision::Bf16, Precision::Fp16] {
        let out = dir.path().join(precision.name());
        let mut losses = Vec::new();
        let p = TrainParams {
            precision,
            ..params.clone()
        };
        let model = train(&cache, None, &p, &out, device(), |e| {
            if let Event::Step { loss, .. } = e {
                losses.push(loss);
            }
        })
        .unwrap();
        let (first, last) = (mean(&losses[..10]), mean(&losses[50..]));
        eprintln!(
            "{}: loss {first:.4} -> {last:.4} (fp32: {fp32_last:.4})",
            precision.name()
        );
        assert!(
            last < 0.9 * first && last < 1.15 * fp32_last,
            "{}: loss {first:.4} -> {last:.4}, fp32 reached {fp32_last:.4}",
            precision.name()
        );
        assert!(model
            .vs
            .variables()
            .values()
            .all(|t| t.kind() == Kind::Float));
        let saved = Model::load(&out.join("model.safetensors"), device()).unwrap();
        let logits = tch::no_grad(|| saved.net.forward_t(&x, false).main);
        assert_eq!(logits.isfinite().all().int64_value(&[]), 1);
    }
}

/// log.csv without its seconds column.
fn log_without_times(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

fn weights(path: &Path) -> Vec<(String, Tensor)> {
    let m = Model::load(path, device()).unwrap();
    let mut v: Vec<(String, Tensor)> = m.vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// 40 steps, a checkpoint every 10.
const RUN: [&str; 4] = ["--steps", "40", "--checkpoint-every", "10"];

#[test]
fn a_killed_run_resumes_from_its_checkpoint_on_the_same_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let split = write_split(dir.path());
    // The uninterrupted run.
    let whole = dir.path().join("whole");
    let o = train_command(&split, &whole, false)
        .args(RUN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The same run killed after its first checkpoint, once a line past it is logged.
    let cut = dir.path().join("cut");
    let mut child = train_command(&split, &cut, false)
        .args(RUN)
        .spawn()
        .unwrap();
    let log = cut.join("log.csv");
    let start = Instant::now();
    loop {
        let steps = std::fs::read_to_string(&log)
            .ok()
            .and_then(|t| {
                t.lines()
                    .last()
                    .and_then(|l| l.split(',').next()?.parse::<usize>().ok())
            })
            .unwrap_or(0);
        if steps >= 15 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no progress in log.csv"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = log_without_times(&log).len() - 1;
    assert!(
        killed_at < 8,
        "killed after {killed_at} of 8 log lines: too late to test"
    );

    // Other proposal settings would rebuild the index under the checkpoint: refused first,
    // the index left as it was.
    let index = cut.join("cache/train.index.json");
    let before = std::fs::read(&index).unwrap();
    let o = train_command(&split, &cut, true)
        .args(RUN)
        .args(["--seed", "9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("would be rebuilt under the checkpoint"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&index).unwrap(), before);

    let o = train_command(&split, &cut, true)
        .args(RUN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("resumed from"), "{stderr}");
    assert!(!stderr.contains("at step 0\n"), "{stderr}");

    // Same lines (step, epoch, learning rate, loss, accuracy, validation) and same weights.
    assert_eq!(
        log_without_times(&log),
        log_without_times(&whole.join("log.csv"))
    );
    let (a, b) = (
        weights(&whole.join("model.safetensors")),
        weights(&cut.join("model.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        let d = (ta - tb).abs().max().double_value(&[]);
        assert!(d <= 1e-6, "{na} differs by {d}");
    }
}

#[test]
fn an_ensemble_trains_members_with_their_own_seeds_and_detect_averages_them() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("two.txt");
    std::fs::write(&split, "raccoon-155\nraccoon-132\n").unwrap();
    let out = dir.path().join("ens");
    let mut c = train_command(&split, &out, false);
    let o = c
        .args(["--ensemble", "2", "--steps", "3", "--checkpoint-every", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let members: Vec<PathBuf> = (1..=2)
        .map(|k| out.join(format!("member-{k}/model.safetensors")))
        .collect();
    let (a, b) = (weights(&members[0]), weights(&members[1]));
    let differ = a
        .iter()
        .zip(&b)
        .any(|((_, ta), (_, tb))| (ta - tb).abs().max().double_value(&[]) > 0.0);
    assert!(differ, "both members have the same weights");
    // Both region indexes are one: built once in --out/cache.
    assert!(out.join("cache/train.regions").is_file());
    assert!(!out.join("member-1/cache").exists());
    let det = dir.path().join("det");
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args(["--threads", &TORCH_THREADS.to_string(), "detect"])
        .arg(root().join("data/raccoon/images/raccoon-155.jpg"))
        .args([
            "--max-proposals",
            "50",
            "--device",
            "cpu",
            "--format",
            "csv",
        ])
        .arg("--model")
        .arg(&members[0])
        .arg("--model")
        .arg(&members[1])
        .arg("--out")
        .arg(&det)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(det.join("detections.csv")).unwrap();
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.starts_with("raccoon-155,raccoon,")),
        "{csv}"
    );

    // Fine-tuning from a member: the file has no auxiliary heads, so those start fresh and
    // everything else is copied.
    let tuned = dir.path().join("tuned");
    let mut c = train_command(&split, &tuned, false);
    let init = members[0].to_str().unwrap();
    let args = ["--init", init, "--steps", "2", "--checkpoint-every", "2"];
    let o = c.args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("initialised from"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("fresh: aux1."), "{line}");
    assert!(!line.contains("conv1.") && !line.contains(" fc."), "{line}");
}

#[test]
fn corrupt_images_and_missing_files_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (images, annotations) = (dir.path().join("images"), dir.path().join("annotations"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&annotations).unwrap();
    let data = root().join("data/raccoon");
    std::fs::copy(data.join("images/raccoon-155.jpg"), images.join("good.jpg")).unwrap();
    std::fs::write(images.join("broken.jpg"), b"\xff\xd8\xff\xe0 cut short").unwrap();
    let xml = std::fs::read_to_string(data.join("annotations/raccoon-155.xml")).unwrap();
    std::fs::write(annotations.join("good.xml"), &xml).unwrap();
    std::fs::write(annotations.join("broken.xml"), &xml).unwrap();
    std::fs::write(annotations.join("bad.xml"), "<annotation><object>").unwrap();
    let keys: Vec<SplitEntry> = ["good", "broken", "absent"]
        .map(|k| SplitEntry {
            key: k.into(),
            whole: None,
        })
        .to_vec();
    let loaded = load_images(&images, &annotations, Some(&keys), None).unwrap();
    assert_eq!(loaded.images.len(), 2);
    let warnings = loaded.warnings.join("\n");
    assert!(warnings.contains("absent: no image file"), "{warnings}");
    assert!(warnings.contains("bad.xml"), "{warnings}");
    let spec = RegionSpec {
        max_proposals: 100,
        max_background: 10,
        ..RegionSpec::new(loaded.images, 1)
    };
    let index = RegionIndex::open_or_build(
        &dir.path().join("cache"),
        "train",
        &spec,
        &Precomputed::default(),
        &|| {},
    )
    .unwrap();
    assert_eq!(index.skipped.len(), 1);
    assert!(
        index.skipped[0].contains("broken.jpg"),
        "{:?}",
        index.skipped
    );
    assert!(index.iter().all(|r| r.image == 0));
    assert_eq!(index.background(), 10);
}

#[test]
fn a_full_disk_while_caching_names_the_file_and_leaves_no_partial_cache() {
    let dir = tempfile::tempdir().unwrap();
    let split = write_split(dir.path());
    let out = dir.path().join("out");
    let c = train_command(&split, &out, false);
    let mut line = format!("exec {}", c.get_program().to_string_lossy());
    for a in c.get_args() {
        line.push(' ');
        line.push_str(&a.to_string_lossy());
    }
    // A 256 KiB file-size limit stands in for a full disk (SIGXFSZ ignored, as ENOSPC raises
    // no signal): the pixel cache of six photos at 80 px is larger (the index is not).
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 256; {line} --steps 1 --pixels cache"
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("train.u8.partial") && err.contains("File too large"),
        "{err}"
    );
    // Nothing of the pixel cache is left but its lock, an empty file that stays, since removing
    // a lock file others may be waiting on would let a third process take a second lock; the
    // region index, whole, stays for the next run.
    let mut left: Vec<String> = std::fs::read_dir(out.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "train.index.json",
            "train.lock",
            "train.pixels.lock",
            "train.regions"
        ],
        "{left:?}"
    );
}

#[test]
fn two_processes_starting_together_build_a_shared_cache_once() {
    // Two opens of one cache folder at once (as two array tasks of a cluster job): each its
    // own file and lock, as two processes have. One builds; the other waits and reuses.
    let dir = tempfile::tempdir().unwrap();
    let loaded = six_raccoons();
    let spec = RegionSpec {
        max_proposals: 100,
        max_background: 8,
        ..RegionSpec::new(loaded.images[..3].to_vec(), 5)
    };
    let built = std::sync::atomic::AtomicUsize::new(0);
    let none = Precomputed::default();
    let indexes: Vec<RegionIndex> = std::thread::scope(|s| {
        let open = || {
            s.spawn(|| {
                RegionIndex::open_or_build(
                    &dir.path().join("cache"),
                    "train",
                    &spec,
                    &none,
                    &|| {
                        built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    },
                )
                .unwrap()
            })
        };
        let (a, b) = (open(), open());
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(
        built.into_inner(),
        3,
        "three images indexed once, not twice"
    );
    assert_eq!(
        indexes[0].iter().collect::<Vec<_>>(),
        indexes[1].iter().collect::<Vec<_>>()
    );
    assert!(dir.path().join("cache/train.lock").exists());
}

#[test]
fn a_finished_run_its_own_inputs_and_bad_class_lists_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let split = write_split(dir.path());
    let out = dir.path().join("run");
    let quick = ["--steps", "2", "--checkpoint-every", "1"];
    let o = train_command(&split, &out, false)
        .args(quick)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = out.join("model.safetensors");
    let (model_bytes, log_bytes) = (
        std::fs::read(&model).unwrap(),
        std::fs::read(out.join("log.csv")).unwrap(),
    );
    let refused = |extra: &[&str], folder: &Path| {
        let o = train_command(&split, folder, false)
            .args(quick)
            .args(extra)
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Again into the finished run: it was replaced without a word.
    let err = refused(&[], &out);
    assert!(
        err.contains("holds an earlier run (model.safetensors)"),
        "{err}"
    );
    // Its own model as the first weights: the log was truncated before the refusal.
    let err = refused(&["--init", model.to_str().unwrap(), "--overwrite"], &out);
    assert!(err.contains("is an input of this run"), "{err}");
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    assert_eq!(std::fs::read(out.join("log.csv")).unwrap(), log_bytes);
    // Class lists that training would accept and then fail on, or silently mis-train.
    let classes = dir.path().join("classes.txt");
    let fresh = dir.path().join("fresh");
    std::fs::write(&classes, "raccoon\n__background__\n").unwrap();
    let err = refused(&["--classes", classes.to_str().unwrap()], &fresh);
    assert!(err.contains("__background__ at line 2"), "{err}");
    std::fs::write(&classes, "raccoon\nraccoon\n").unwrap();
    let err = refused(&["--classes", classes.to_str().unwrap()], &fresh);
    assert!(err.contains("class raccoon is listed twice"), "{err}");
    assert!(!fresh.join("log.csv").exists(), "nothing was trained");
    // --overwrite says it means it.
    let o = train_command(&split, &out, false)
        .args(quick)
        .arg("--overwrite")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn an_image_unreadable_mid_training_is_named_dropped_and_counted_in_the_log() {
    // Precomputed proposals index an image without decoding it: its damage shows when a
    // mini-batch first needs its pixels.
    tch::set_num_threads(TORCH_THREADS);
    let dir = tempfile::tempdir().unwrap();
    let mut images = six_raccoons().images[..3].to_vec();
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff not a JPEG after all").unwrap();
    images[2].path = broken.clone();
    let proposals: std::collections::HashMap<PathBuf, Vec<eval::BBox>> = images
        .iter()
        .map(|im| {
            let o = im.objects[0].bbox;
            let boxes = (0..20)
                .map(|k| {
                    let d = k as f64 * 6.0;
                    eval::BBox::new(o.x1 + d, o.y1, o.x2 + d, o.y2)
                })
                .collect();
            (im.path.clone(), boxes)
        })
        .collect();
    let spec = RegionSpec {
        proposals: Some(inception_rcnn::train::regions::ProposalsStamp {
            path: "test".into(),
            bytes: 0,
            modified: 0,
        }),
        ..RegionSpec::new(images, 3)
    };
    let pre = Precomputed::in_memory(spec.proposals.clone().unwrap(), proposals);
    let index = RegionIndex::open_or_build(&dir.path().join("cache"), "train", &spec, &pre, &|| {})
        .unwrap();
    assert!(index.skipped.is_empty());
    let batches = Batches::stream(
        &index,
        WarpParams::new(80, IMAGENET_MEAN, IMAGENET_STD),
        1 << 26,
    );
    let params = TrainParams {
        recipe: tiny_recipe(index.len(), 3, 8, 8),
        steps: 4,
        checkpoint_every: 4,
        log_every: 2,
        resume: false,
        precision: Precision::Fp32,
    };
    let out = dir.path().join("run");
    let mut steps = 0;
    train(&batches, None, &params, &out, device(), |e| {
        if let Event::Step { .. } = e {
            steps += 1;
        }
    })
    .unwrap();
    assert_eq!(steps, 4);
    assert_eq!(batches.dropped(), 1);
    let log = std::fs::read_to_string(out.join("log.csv")).unwrap();
    let header: Vec<&str> = log.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "dropped_images").unwrap();
    let last = log
        .lines()
        .last()
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .to_string();
    assert_eq!(last, "1", "{log}");
}

#[test]
fn proposals_from_two_shards_train_as_one_set_and_match_selective_search_in_process() {
    // `rcnn proposals --shard K/2` over the six photos writes two files; `rcnn train
    // --proposals DIR` reads the folder as one set, and its region index equals the one built
    // with selective search in the training process (same search, same boxes).
    let dir = tempfile::tempdir().unwrap();
    let split = write_split(dir.path());
    let list = dir.path().join("six.txt");
    let data = root().join("data/raccoon/images");
    std::fs::write(
        &list,
        IMAGES
            .map(|k| format!("{}\n", data.join(format!("{k}.jpg")).display()))
            .concat(),
    )
    .unwrap();
    let props = dir.path().join("props");
    std::fs::create_dir_all(&props).unwrap();
    for k in 1..=2 {
        let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
            .args(["proposals"])
            .arg(&list)
            .args(["--seed", "3", "--shard", &format!("{k}/2"), "--out"])
            .arg(props.join(format!("{k}.csv")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let shard1 = std::fs::read_to_string(props.join("1.csv")).unwrap();
    let shard2 = std::fs::read_to_string(props.join("2.csv")).unwrap();
    let images_in = |t: &str| {
        let mut n: Vec<String> = t
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect();
        n.dedup();
        n
    };
    let (a, b) = (images_in(&shard1), images_in(&shard2));
    assert_eq!(a.len() + b.len(), 6, "{a:?} {b:?}");
    assert!(a.iter().all(|x| !b.contains(x)));
    let run = |out: &Path, extra: &[&str]| {
        let o = train_command(&split, out, false)
            .args(["--steps", "1", "--seed", "3"])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        assert!(!err.contains("no proposals for"), "{err}");
        RegionIndex::open_existing(&out.join("cache"), "train").unwrap()
    };
    let from_files = run(
        &dir.path().join("files"),
        &["--proposals", props.to_str().unwrap()],
    );
    let searched = run(&dir.path().join("searched"), &[]);
    assert!(from_files.spec.proposals.is_some());
    assert_eq!(from_files.len(), searched.len());
    assert_eq!(
        from_files.iter().collect::<Vec<_>>(),
        searched.iter().collect::<Vec<_>>()
    );
}
