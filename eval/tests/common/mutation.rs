//! Mutations of valid files for the property tests of both crates (`eval/tests/fuzz.rs`,
//! `tests/fuzz.rs`).

use proptest::prelude::*;

/// A mutation of `seed`: edits at positions (mod its length) that replace, insert or delete a
/// byte, then an optional cut.
pub fn mutated(seed: &[u8], edits: &[(usize, u8, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut b = seed.to_vec();
    for &(at, byte, op) in edits {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let at = at % b.len();
        match op % 3 {
            0 => b[at] = byte,
            1 => b.insert(at, byte),
            _ => {
                b.remove(at);
            }
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

/// Up to eight edits and an optional cut, for [`mutated`].
pub fn edits() -> impl Strategy<Value = (Vec<(usize, u8, u8)>, Option<usize>)> {
    (
        prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..8),
        prop::option::of(any::<usize>()),
    )
}
