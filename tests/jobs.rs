//! The detect, classify, merge and visualize jobs called from Rust, as the CLI calls them but
//! without spawning the binary: resume from a journal, shards that partition a run and merge
//! into it, drawings scored against ground truth, and refusal to overwrite an input before any
//! work.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use eval::BBox;
use inception_rcnn::detect::postprocess::Detected;
use inception_rcnn::detect::{open_journal, Entry};
use inception_rcnn::jobs::classify::ClassifyJob;
use inception_rcnn::jobs::detect::{journal_settings, DetectJob};
use inception_rcnn::jobs::merge::{MergeJob, MergeSummary};
use inception_rcnn::jobs::visualize::VisualizeJob;
use inception_rcnn::jobs::JobError;
use inception_rcnn::model::{GoogLeNetConfig, Layout, Model};
use inception_rcnn::run::device::DeviceChoice;
use inception_rcnn::run::shard::ShardSpec;
use tch::Device;

/// A small seeded, untrained paper-layout model: background, raccoon, other.
fn tiny_model(path: &Path) -> PathBuf {
    tch::manual_seed(11);
    let config = GoogLeNetConfig {
        width: 0.125,
        input_size: 64,
        num_classes: 3,
        ..GoogLeNetConfig::new(Layout::Paper)
    };
    let classes = ["__background__", "raccoon", "other"].map(String::from);
    Model::new(&config, classes.to_vec(), Device::Cpu)
        .unwrap()
        .save(path)
        .unwrap();
    path.to_path_buf()
}

fn raccoons(n: usize) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/raccoon/images");
    (1..=n)
        .map(|i| dir.join(format!("raccoon-{i}.jpg")))
        .collect()
}

/// A quick detect job on the CPU: few proposals, two workers.
fn job(images: Vec<PathBuf>, model: &Path, out: PathBuf) -> DetectJob {
    let mut job = DetectJob::new(images, vec![model.to_path_buf()], out);
    job.inference.device = DeviceChoice::Cpu;
    job.inference.workers = Some(2);
    job.max_proposals = 60;
    job
}

/// detections.csv's rows (the header dropped), as text.
fn csv_rows(out: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(out.join("detections.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect()
}

#[test]
fn a_resumed_detect_job_keeps_the_journal_and_does_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let images = raccoons(3);
    let whole = job(images.clone(), &model, dir.path().join("whole"));
    let summary = whole.run(&()).unwrap();
    assert_eq!((summary.images, summary.resumed), (3, 0));
    let uninterrupted = csv_rows(&whole.out);
    assert!(!uninterrupted.is_empty());

    // A run killed after its first image: the journal holds that image only, with a
    // detection the network would never give, so that its origin shows in the outputs.
    let killed = job(images, &model, dir.path().join("killed"));
    std::fs::create_dir_all(&killed.out).unwrap();
    let settings = journal_settings(&killed, Device::Cpu, 32, None);
    let (mut journal, _) = open_journal(&killed.out, false, &settings).unwrap();
    let planted = Detected {
        class: 1,
        score: 0.987_654_3,
        bbox: BBox::new(3.0, 4.0, 50.0, 60.0),
    };
    journal
        .append(&Entry::new("raccoon-1".into(), 7, &[planted]))
        .unwrap();
    drop(journal);

    let mut resumed = killed.clone();
    resumed.resume = true;
    let summary = resumed.run(&()).unwrap();
    assert_eq!((summary.images, summary.resumed), (3, 1));
    let rows = csv_rows(&resumed.out);
    let first: Vec<&String> = rows
        .iter()
        .filter(|r| r.starts_with("raccoon-1,"))
        .collect();
    assert_eq!(
        first.len(),
        1,
        "raccoon-1 comes from the journal alone: {first:?}"
    );
    assert!(first[0].contains("0.98765"), "{}", first[0]);
    let others = |rows: &BTreeSet<String>| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| !r.starts_with("raccoon-1,"))
            .cloned()
            .collect()
    };
    assert_eq!(others(&rows), others(&uninterrupted));
    assert!(
        !resumed.out.join(".rcnn-detect.journal").exists(),
        "a finished run removes its journal"
    );

    // Resuming with another setting is refused before anything changes.
    let mut other = resumed.clone();
    other.nms_iou = 0.5;
    std::fs::create_dir_all(&other.out).unwrap();
    let (mut journal, _) = open_journal(&other.out, false, &settings).unwrap();
    journal
        .append(&Entry::new("raccoon-1".into(), 7, &[planted]))
        .unwrap();
    drop(journal);
    let err = format!("{:#}", anyhow::Error::from(other.run(&()).unwrap_err()));
    assert!(err.contains("nms_iou: 0.3 -> 0.5"), "{err}");
}

#[test]
fn detect_shards_partition_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let images = raccoons(3);
    let whole = job(images.clone(), &model, dir.path().join("whole"));
    whole.run(&()).unwrap();
    let mut union = BTreeSet::new();
    let mut counts = Vec::new();
    for k in 1..=2 {
        let mut shard = job(images.clone(), &model, dir.path().join(format!("shard{k}")));
        shard.shard = Some(ShardSpec::Fixed { k, n: 2 });
        counts.push(shard.run(&()).unwrap().images);
        let rows = csv_rows(&shard.out);
        assert!(union.is_disjoint(&rows), "an image in two shards");
        union.extend(rows);
        let shard_file = std::fs::read_to_string(shard.out.join("shard.json")).unwrap();
        assert_eq!(shard_file, format!("{{\"of\":2,\"shard\":{k}}}"));
    }
    assert_eq!(counts, [2, 1], "every other image, from the first");
    assert_eq!(union, csv_rows(&whole.out));

    // Merged, the shards give the unsharded run's files byte for byte.
    let shards: Vec<PathBuf> = (1..=2)
        .map(|k| dir.path().join(format!("shard{k}")))
        .collect();
    let merge = |shards: Vec<PathBuf>, out: &str| MergeJob {
        shards,
        out: dir.path().join(out),
        formats: whole.formats.clone(),
    };
    let merged = merge(shards.clone(), "merged");
    let summary = merged.run().unwrap();
    let MergeSummary::Detections {
        shards: 2,
        images: 3,
        detections,
    } = summary
    else {
        panic!("{summary:?}")
    };
    assert_eq!(detections, union.len());
    for f in [
        "detections.csv",
        "detections.txt",
        "image_list.txt",
        "classes.txt",
    ] {
        assert_eq!(
            std::fs::read(merged.out.join(f)).unwrap(),
            std::fs::read(whole.out.join(f)).unwrap(),
            "{f}"
        );
    }

    // One shard twice (and the other missing) is refused by name, before anything is written.
    let err = merge(vec![shards[0].clone(), shards[0].clone()], "twice")
        .run()
        .unwrap_err();
    assert!(matches!(err, JobError::Refused(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("shard 1/2 is given 2 times"), "{message}");
    assert!(message.contains("shard 2/2 is missing"), "{message}");
    assert!(!dir.path().join("twice").exists());
}

#[test]
fn a_job_refuses_to_overwrite_an_input_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The model file sits where the run would write classes.txt.
    let model = tiny_model(&out.join("classes.txt"));
    let before = std::fs::read(&model).unwrap();
    let err = job(raccoons(1), &model, out.clone()).run(&()).unwrap_err();
    let message = format!("{:#}", anyhow::Error::from(err));
    assert!(message.contains("classes.txt"), "{message}");
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "the input is intact"
    );
    assert!(!out.join("detections.csv").exists(), "nothing was written");

    let mut classify = ClassifyJob::new(raccoons(1), vec![model.clone()], out.clone());
    classify.inference.device = DeviceChoice::Cpu;
    classify.report = Some(model.clone());
    classify.labels = Some(model.clone());
    let err = classify.run(&()).unwrap_err();
    assert!(matches!(err, JobError::Failed(_)), "{err:?}");
    assert_eq!(std::fs::read(&model).unwrap(), before);
}

#[test]
fn a_job_without_images_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = job(vec![empty], &model, dir.path().join("out"))
        .run(&())
        .unwrap_err();
    assert!(matches!(err, JobError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("no images"), "{err}");
}

#[test]
fn a_visualize_job_scores_what_it_draws_and_keeps_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // raccoon-1 has one raccoon at (81, 88, 522, 408): one detection on it, one beside it, and
    // one under the threshold; raccoon-2's object is missed.
    let dets = dir.path().join("dets.csv");
    std::fs::write(
        &dets,
        "image,class,score,xmin,ymin,xmax,ymax\n\
         raccoon-1,raccoon,0.9,80,90,520,400\n\
         raccoon-1,raccoon,0.8,0,0,40,40\n\
         raccoon-1,raccoon,0.1,81,88,522,408\n",
    )
    .unwrap();
    let job = VisualizeJob {
        images: raccoons(2),
        dets: dets.clone(),
        gt: Some(root.join("data/raccoon/annotations")),
        gt_format: None,
        classes: None,
        image_list: None,
        threshold: 0.5,
        iou: 0.5,
        out: dir.path().join("drawn"),
    };
    let summary = job.run(&()).unwrap();
    assert_eq!(summary.drawn, 2);
    assert_eq!(
        summary.scored,
        Some((1, 1, 1)),
        "hits, false positives, misses"
    );
    for f in ["raccoon-1.jpg", "raccoon-2.jpg", "index.html"] {
        assert!(job.out.join(f).is_file(), "{f}");
    }

    // Drawings into the folder of the detections file would replace it: refused first.
    let before = std::fs::read(&dets).unwrap();
    std::fs::rename(&dets, dir.path().join("index.html")).unwrap();
    let onto_input = VisualizeJob {
        dets: dir.path().join("index.html"),
        out: dir.path().to_path_buf(),
        ..job
    };
    let err = onto_input.run(&()).unwrap_err();
    assert!(err.to_string().contains("index.html"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("index.html")).unwrap(),
        before
    );
}

/// Every file under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out
}

#[test]
fn image_names_from_climbing_paths_write_inside_out() {
    // Two images named x, one reached through `..`: their names once took the path's parts,
    // `../../../x`, and `--format txt` wrote two folders above --out.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("work");
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("d")).unwrap();
    let photo = &raccoons(1)[0];
    std::fs::copy(photo, root.join("x.jpg")).unwrap();
    std::fs::copy(photo, root.join("d/x.jpg")).unwrap();
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let out = root.join("a/b/c/out");
    let mut detect = job(
        vec![root.join("a/b/c/../../../x.jpg"), root.join("d/x.jpg")],
        &model,
        out.clone(),
    );
    detect.formats = vec!["txt".into(), "csv".into()];
    detect.visualize = Some(out.join("drawn"));
    detect.run(&()).unwrap();
    let written: BTreeSet<PathBuf> = files_under(&root)
        .into_iter()
        .filter(|p| !p.ends_with("x.jpg") || p.starts_with("a/b/c/out"))
        .collect();
    for p in &written {
        assert!(
            p.starts_with("a/b/c/out"),
            "{} is outside --out",
            p.display()
        );
    }
    // Told apart by their last folders, read after `..` is taken back.
    for f in [
        "txt/work/x.txt",
        "txt/d/x.txt",
        "drawn/work/x.jpg",
        "drawn/d/x.jpg",
    ] {
        assert!(out.join(f).is_file(), "{f} in {written:?}");
    }
}

#[test]
fn a_merge_of_shards_naming_files_outside_out_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../../../f", "/abs/path", "a/../../f"] {
        let shards: Vec<PathBuf> = (1..=2)
            .map(|k| {
                let s = dir.path().join(format!("s{k}"));
                std::fs::create_dir_all(&s).unwrap();
                let shard = format!("{{\"shard\": {k}, \"of\": 2}}");
                std::fs::write(s.join("shard.json"), shard).unwrap();
                std::fs::write(s.join("image_list.txt"), format!("ok 1\n{bad} 2\n")).unwrap();
                std::fs::write(s.join("classes.txt"), "raccoon\n").unwrap();
                let row = match k {
                    1 => "ok,raccoon,0.9,1,2,30,40\n",
                    _ => "",
                };
                let csv = format!("image,class,score,xmin,ymin,xmax,ymax\n{row}");
                std::fs::write(s.join("detections.csv"), csv).unwrap();
                s
            })
            .collect();
        let out = dir.path().join("deep/er/merged");
        let merge = MergeJob {
            shards,
            out: out.clone(),
            formats: vec!["txt".into(), "csv".into()],
        };
        let err = merge.run().unwrap_err().to_string();
        assert!(err.contains("cannot name a file under"), "{bad}: {err}");
        assert!(err.contains(bad), "{err}");
        let written: Vec<PathBuf> = match out.exists() {
            true => files_under(&out)
                .into_iter()
                .filter(|p| !p.ends_with(inception_rcnn::run::lock::OUTPUT_LOCK))
                .collect(),
            false => Vec::new(),
        };
        assert!(written.is_empty(), "{bad}: nothing written: {written:?}");
        assert!(!dir.path().join("f.txt").exists());
        assert!(!Path::new("/abs/path.txt").exists());
    }
}

/// A 1 x 50000 PNG in `dir`: too narrow for selective search's width of 500.
fn narrow_strip(dir: &Path) -> PathBuf {
    let strip = dir.join("strip.png");
    image::RgbImage::from_pixel(1, 50_000, image::Rgb([90, 60, 30]))
        .save(&strip)
        .unwrap();
    strip
}

#[test]
fn a_narrow_image_is_skipped_not_blown_up() {
    // 1 x 50000: selective search's width 500 once asked for a 37.5 GB buffer and aborted
    // the run (signal 6), before any image was journaled.
    let dir = tempfile::tempdir().unwrap();
    let strip = narrow_strip(dir.path());
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let mut images = raccoons(1);
    images.push(strip);
    let summary = job(images, &model, dir.path().join("out"))
        .run(&())
        .unwrap();
    assert_eq!((summary.images, summary.skipped), (1, 1));
    assert!(!csv_rows(&dir.path().join("out")).is_empty());
}

#[test]
fn a_shard_file_claiming_billions_of_shards_is_refused_at_once() {
    // `"of": 4000000000` made rcnn merge take 23 GB listing the missing shards.
    let dir = tempfile::tempdir().unwrap();
    // The error of merging one shard folder whose shard.json is `json`.
    let merge_one = |name: &str, json: &str| {
        let s = dir.path().join(name);
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("shard.json"), json).unwrap();
        MergeJob {
            shards: vec![s],
            out: dir.path().join("out"),
            formats: vec!["csv".into()],
        }
        .run()
        .unwrap_err()
        .to_string()
    };
    let err = merge_one("s1", r#"{"shard": 1, "of": 4000000000}"#);
    assert!(err.contains("more than the 100000"), "{err}");
    // A real count with most shards missing names the first twenty.
    let err = merge_one("s2", r#"{"shard": 1, "of": 100000}"#);
    assert!(err.contains("shard 2/100000 is missing"), "{err}");
    assert!(err.contains("and 99979 more"), "{err}");
    assert!(err.lines().count() <= 22, "{err}");
}

#[test]
fn one_run_per_output_folder_and_a_dead_holder_frees_it() {
    use inception_rcnn::run::lock::{lock_output, OUTPUT_LOCK};
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let out = dir.path().join("out");
    // A first run holds the folder: the second is refused before writing, naming it.
    let first = lock_output(&out, "rcnn detect").unwrap();
    let err = job(raccoons(1), &model, out.clone()).run(&()).unwrap_err();
    let message = format!("{:#}", anyhow::Error::from(err));
    assert!(message.contains("in use by another run"), "{message}");
    assert!(message.contains("rcnn detect, process"), "{message}");
    assert!(!out.join("detections.csv").exists());
    let mut classify = ClassifyJob::new(raccoons(1), vec![model.clone()], out.clone());
    classify.inference.device = DeviceChoice::Cpu;
    assert!(classify.run(&()).is_err());
    drop(first);

    // A holder killed with SIGKILL leaves the lock to the kernel, which frees it.
    let mut holder = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec 9>>\"$0\" && flock 9 && exec sleep 60")
        .arg(out.join(OUTPUT_LOCK))
        .spawn()
        .unwrap();
    // Until the shell has the lock (polled, not slept on: a loaded machine is slow).
    let start = std::time::Instant::now();
    while lock_output(&out, "probe").is_ok() {
        assert!(start.elapsed().as_secs() < 30, "the holder never locked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(job(raccoons(1), &model, out.clone()).run(&()).is_err());
    holder.kill().unwrap();
    holder.wait().unwrap();
    let summary = job(raccoons(1), &model, out.clone()).run(&()).unwrap();
    assert_eq!(summary.images, 1);
}

#[test]
fn resume_redoes_a_replaced_image_and_a_damaged_entry_and_refuses_new_settings() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let images: Vec<PathBuf> = raccoons(2)
        .iter()
        .map(|p| {
            let copy = photos.join(p.file_name().unwrap());
            std::fs::copy(p, &copy).unwrap();
            copy
        })
        .collect();
    let killed = job(images.clone(), &model, dir.path().join("out"));
    std::fs::create_dir_all(&killed.out).unwrap();
    let settings = journal_settings(&killed, Device::Cpu, 32, None);
    // What a killed run journaled: raccoon-1 from the file as it was, raccoon-2 damaged (a
    // class column the 3-class model lacks once panicked with an index out of bounds).
    let planted = |class| Detected {
        class,
        score: 0.987_654_3,
        bbox: BBox::new(3.0, 4.0, 50.0, 60.0),
    };
    let (mut journal, _) = open_journal(&killed.out, false, &settings).unwrap();
    journal
        .append(&Entry::new("raccoon-1".into(), 7, &[planted(1)]).of_file(&images[0]))
        .unwrap();
    journal
        .append(&Entry::new("raccoon-2".into(), 7, &[planted(99)]).of_file(&images[1]))
        .unwrap();
    drop(journal);
    // raccoon-1 is replaced by another photo under the same name.
    std::fs::copy(&raccoons(3)[2], &images[0]).unwrap();

    let mut resumed = killed.clone();
    resumed.resume = true;
    let summary = resumed.run(&()).unwrap();
    assert_eq!((summary.images, summary.resumed), (2, 0), "both redone");
    let rows = csv_rows(&resumed.out);
    assert!(rows.iter().all(|r| !r.contains("0.98765")), "{rows:?}");

    // A changed setting that changes outputs is refused, listed by name.
    let (mut journal, _) = open_journal(&killed.out, false, &settings).unwrap();
    journal
        .append(&Entry::new("raccoon-1".into(), 7, &[planted(1)]).of_file(&images[0]))
        .unwrap();
    drop(journal);
    let mut other = resumed.clone();
    other.score_threshold = 0.5;
    let err = format!("{:#}", anyhow::Error::from(other.run(&()).unwrap_err()));
    assert!(err.contains("score_threshold: 0.01 -> 0.5"), "{err}");
}

#[test]
fn a_run_with_its_outputs_inside_its_input_folder_does_not_read_them_back() {
    // detect's drawings inside the photo folder were read as photos by the next run, and
    // `map-eval --subset` then scored 0.
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for p in raccoons(2) {
        std::fs::copy(&p, photos.join(p.file_name().unwrap())).unwrap();
    }
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let mut run = job(vec![photos.clone()], &model, photos.join("out"));
    run.visualize = Some(photos.join("out/drawn"));
    for _ in 0..2 {
        let summary = run.run(&()).unwrap();
        assert_eq!(summary.images, 2, "the drawings are not taken for photos");
    }
    assert!(photos.join("out/drawn/raccoon-1.jpg").is_file());
    // An unreadable subfolder is left out, named, not the end of the run.
    let locked = photos.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::copy(&raccoons(3)[2], locked.join("raccoon-3.jpg")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::read_dir(&locked).is_ok(); // root reads it anyway
    let found = inception_rcnn::detect::decode::collect_images(std::slice::from_ref(&photos));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let found = found.unwrap();
    let expected = if readable { 3 + 2 } else { 2 + 2 };
    assert_eq!(found.len(), expected, "{found:?}");
}

#[test]
fn proposals_outside_the_image_give_detections_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(&dir.path().join("m.safetensors"));
    // raccoon-1 is 650 x 417; its proposals reach past every side; another image is not in
    // the run.
    let proposals = dir.path().join("proposals.csv");
    std::fs::write(
        &proposals,
        "image,rank,xmin,ymin,xmax,ymax\n\
         raccoon-1,1,-50,-40,900,700\n\
         raccoon-1,2,600,-10,800,100\n\
         raccoon-1,3,100,100,300,300\n\
         elsewhere,1,0,0,10,10\n",
    )
    .unwrap();
    let mut run = job(raccoons(1), &model, dir.path().join("out"));
    run.proposals = Some(proposals);
    run.score_threshold = 0.0;
    run.run(&()).unwrap();
    let rows = csv_rows(&run.out);
    assert!(!rows.is_empty());
    for row in &rows {
        let v: Vec<f64> = row.split(',').skip(3).map(|x| x.parse().unwrap()).collect();
        assert!(
            v[0] >= 0.0 && v[1] >= 0.0 && v[2] <= 649.0 && v[3] <= 416.0,
            "{row} reaches outside the image"
        );
    }
}

#[test]
fn a_skipped_image_is_journaled_and_not_read_again_on_resume() {
    // A run killed after skipping a narrow image: --resume met it again before anything
    // else was journaled. Now its skip is journaled like a finished image.
    let dir = tempfile::tempdir().unwrap();
    let strip = narrow_strip(dir.path());
    let model = tiny_model(&dir.path().join("m.safetensors"));
    let images = vec![raccoons(1)[0].clone(), strip.clone()];
    let first = job(images.clone(), &model, dir.path().join("out"));
    let summary = first.run(&()).unwrap();
    assert_eq!((summary.images, summary.skipped), (1, 1));

    // What a killed run of it journaled: both images, the strip as skipped.
    std::fs::create_dir_all(&first.out).unwrap();
    let settings = journal_settings(&first, Device::Cpu, 32, None);
    let (mut journal, _) = open_journal(&first.out, false, &settings).unwrap();
    journal
        .append(&Entry::new("raccoon-1".into(), 7, &[]).of_file(&images[0]))
        .unwrap();
    journal
        .append(&Entry::skipped("strip".into(), "too narrow".into()).of_file(&strip))
        .unwrap();
    drop(journal);
    let mut resumed = first.clone();
    resumed.resume = true;
    let summary = resumed.run(&()).unwrap();
    assert_eq!(
        (
            summary.images,
            summary.resumed,
            summary.skipped,
            summary.processed
        ),
        (1, 1, 1, 0),
        "nothing read again"
    );
}
