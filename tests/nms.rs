//! NMS against torchvision.ops.nms and batched_nms: the same kept indices, ties included.
//! (torchvision's nms ranks with a stable sort, as ours; its batched_nms ends with an unstable
//! one, so there only the kept set and the score order are defined.)

use std::path::Path;

use eval::PixelConvention;
use inception_rcnn::detect::nms::{batched_nms, nms, Corners};

#[test]
fn kept_indices_equal_torchvisions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nms/nms.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // JSON holds the float32 values exactly (as doubles).
    let boxes: Vec<Corners> = v["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let a: Vec<f32> = b
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            [a[0], a[1], a[2], a[3]]
        })
        .collect();
    let scores: Vec<f32> = v["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let classes: Vec<usize> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let ties = scores.len() - {
        let mut s: Vec<u32> = scores.iter().map(|x| x.to_bits()).collect();
        s.sort();
        s.dedup();
        s.len()
    };
    assert!(ties > 1000, "the fixture is full of tied scores");
    let indices = |x: &serde_json::Value| {
        x.as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect::<Vec<_>>()
    };
    for t in ["0.3", "0.5", "0.7"] {
        let thr: f32 = t.parse().unwrap();
        assert_eq!(
            nms(&boxes, &scores, thr, PixelConvention::Continuous),
            indices(&v["nms"][t]),
            "nms at {t}"
        );
        // batched_nms: torchvision's final ranking across classes is an unstable sort, so equal
        // scores may come in any order there; the kept set and the score sequence must agree.
        let ours = batched_nms(&boxes, &scores, &classes, thr, PixelConvention::Continuous);
        let theirs = indices(&v["batched_nms"][t]);
        let score_seq = |k: &[usize]| k.iter().map(|&i| scores[i].to_bits()).collect::<Vec<_>>();
        assert_eq!(
            score_seq(&ours),
            score_seq(&theirs),
            "batched_nms at {t}: score order"
        );
        let (mut a, mut b) = (ours.clone(), theirs.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b, "batched_nms at {t}: kept set");
    }
}
