//! Property tests over the readers of the detector's own files: proposals (CSV and JSON),
//! model metadata, torch.save archives and split files. Arbitrary bytes and mutations of valid
//! files never panic, and whatever is read is finite and within the file.

use std::collections::HashMap;
use std::path::Path;

use inception_rcnn::detect::propose::read_proposals;
use inception_rcnn::model::pth;
use inception_rcnn::model::weights::config_from_metadata;
use proptest::prelude::*;

#[path = "../eval/tests/common/mutation.rs"]
mod mutation;
use mutation::{edits, mutated};

const CSV: &str = "image,rank,xmin,ymin,xmax,ymax\na,1,0,0,10,10\n\"b, c\",2,5.5,6,20,30\n";
const JSON: &str = r#"{"a": [[0, 0, 10, 10], [5.5, 6, 20, 30]], "b": []}"#;

fn check_proposals(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    for strict in [false, true] {
        if let Ok(map) = read_proposals(&p, &mut eval::Issues::new(strict)) {
            for b in map.values().flatten() {
                prop_assert!(
                    [b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite()),
                    "{b:?}"
                );
                prop_assert!(b.x2 >= b.x1 && b.y2 >= b.y1, "{b:?}");
            }
        }
    }
    Ok(())
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pth")
            .join(name),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn proposals_files_survive_mutations((e, cut) in edits(), bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_proposals("p.csv", &mutated(CSV.as_bytes(), &e, cut))?;
        check_proposals("p.json", &mutated(JSON.as_bytes(), &e, cut))?;
        check_proposals("p.csv", &bytes)?;
        check_proposals("p.json", &bytes)?;
    }

    #[test]
    fn model_metadata_is_checked_not_trusted(
        num_classes in "[-0-9]{0,14}|1e9|NaN",
        width in "[-0-9.eE]{0,8}|NaN|inf",
        input_size in "[-0-9]{0,10}",
        mean in "[-0-9.,a-z]{0,20}",
        classes in ".{0,40}",
    ) {
        let meta: HashMap<String, String> = [
            ("format", "inception-rcnn/googlenet"),
            ("layout", "paper"),
            ("num_classes", num_classes.as_str()),
            ("width", width.as_str()),
            ("input_size", input_size.as_str()),
            ("aux_logits", "false"),
            ("transform_input", "false"),
            ("mean", mean.as_str()),
            ("std", "0.229,0.224,0.225"),
            ("classes", classes.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Ok((config, _)) = config_from_metadata(Path::new("m.safetensors"), &meta) {
            prop_assert!((1..=100_000).contains(&config.num_classes));
            prop_assert!((32..=1024).contains(&config.input_size));
            prop_assert!(config.width > 0.0 && config.width <= 4.0);
        }
    }

    #[test]
    fn torch_save_readers_survive_mutations((e, cut) in edits(), which in 0usize..4) {
        let name = ["zip_ordered.pth", "zip_checkpoint.pth", "legacy_ordered.pth", "legacy_checkpoint.pth"][which];
        let bytes = mutated(&fixture(name), &e, cut);
        if let Ok(tensors) = pth::read(&bytes) {
            // Nothing read can be larger than the file that held it.
            let total: usize = tensors.values().map(|t| t.numel() * t.kind().elt_size_in_bytes()).sum();
            prop_assert!(total <= bytes.len() * 2, "{total} bytes from a {}-byte file", bytes.len());
        }
    }

    #[test]
    fn torch_save_readers_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = pth::read(&bytes);
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend(&bytes);
        let _ = pth::read(&zip);
    }
}
