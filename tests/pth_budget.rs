//! Crafted torch.save files stay within memory: a storage entry that inflates far past what
//! its tensors reach is read only as far as they reach. Alone in its test binary, so that the
//! process's peak memory is this test's.

use inception_rcnn::model::weights::read_state_dict;
use std::io::Write;

/// The pickle of `{"w": a 2 x 5 float tensor over a storage that declares `numel` elements}`,
/// as torch.save writes a state dict.
fn state_dict_pickle(numel: i32) -> Vec<u8> {
    let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((".to_vec();
    p.extend(b"X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000");
    p.extend(b"X\x03\x00\x00\x00cpuJ");
    p.extend(numel.to_le_bytes());
    p.extend(b"tQK\x00K\x02K\x05\x86K\x05K\x01\x86\x89ccollections\nOrderedDict\n)RtRs.");
    p
}

/// Peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_storage_that_inflates_to_gigabytes_behind_a_small_view_is_read_as_far_as_the_view() {
    // 400 MiB of zeros deflate to about 400 KB; the tensor over them is 2 x 5.
    let numel: i32 = 100 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.pth");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&state_dict_pickle(numel)).unwrap();
    zip.start_file("archive/byteorder", stored).unwrap();
    zip.write_all(b"little").unwrap();
    zip.start_file("archive/data/0", deflated).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..(numel as usize * 4) >> 20 {
        zip.write_all(&chunk).unwrap();
    }
    zip.finish().unwrap();
    drop(chunk);
    let file_len = std::fs::metadata(&path).unwrap().len();
    assert!(
        file_len < 2 << 20,
        "the crafted file is small: {file_len} bytes"
    );

    let before = peak_rss();
    let tensors = read_state_dict(&path).unwrap();
    let grown = peak_rss().saturating_sub(before);
    assert_eq!(tensors["w"].size(), [2, 5]);
    assert!(
        grown < 64 << 20,
        "reading a {file_len}-byte file grew the peak by {} MB",
        grown >> 20
    );
}
