//! An ordered parallel map: work on many threads, results handed over in input order with a
//! bounded window ahead. Detect, classify and training's region cache feed the device this way.

use std::collections::BTreeMap;
use std::sync::mpsc::sync_channel;
use std::sync::{Condvar, Mutex};

/// Runs `work(i)` for `0..n` on `workers` threads and hands the results to `consume` in order
/// of `i`. At most `window` results wait ahead of the next one due, so memory stays bounded
/// however uneven the items are.
pub fn in_order<R: Send>(
    n: usize,
    workers: usize,
    window: usize,
    work: impl Fn(usize) -> R + Sync,
    mut consume: impl FnMut(R) -> bool,
) {
    let window = window.max(workers).max(1);
    // (next index to take, next index to hand over, stop)
    let state = Mutex::new((0usize, 0usize, false));
    let turn = Condvar::new();
    let (tx, rx) = sync_channel::<(usize, R)>(window);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            let tx = tx.clone();
            let (state, turn, work) = (&state, &turn, &work);
            scope.spawn(move || loop {
                let i = {
                    let mut s = state.lock().expect("no worker panics");
                    while !s.2 && s.0 < n && s.0 >= s.1 + window {
                        s = turn.wait(s).expect("no worker panics");
                    }
                    if s.2 || s.0 >= n {
                        return;
                    }
                    s.0 += 1;
                    s.0 - 1
                };
                if tx.send((i, work(i))).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut early: BTreeMap<usize, R> = BTreeMap::new();
        let mut next = 0;
        let mut stop = false;
        while !stop && next < n {
            let Ok((i, r)) = rx.recv() else { break };
            early.insert(i, r);
            while let Some(r) = early.remove(&next) {
                next += 1;
                state.lock().expect("no worker panics").1 = next;
                turn.notify_all();
                if !consume(r) {
                    stop = true;
                    break;
                }
            }
        }
        state.lock().expect("no worker panics").2 = true;
        turn.notify_all();
        drop(rx);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_hands_results_over_in_order_whatever_the_workers() {
        for workers in [1, 3, 8] {
            let mut seen = Vec::new();
            in_order(
                50,
                workers,
                4,
                |i| {
                    // Uneven work: later items often finish first.
                    std::thread::sleep(std::time::Duration::from_micros(
                        ((50 - i) * 37 % 11) as u64 * 100,
                    ));
                    i * i
                },
                |r| {
                    seen.push(r);
                    true
                },
            );
            assert_eq!(
                seen,
                (0..50).map(|i| i * i).collect::<Vec<_>>(),
                "{workers} workers"
            );
        }
        // A consumer that stops early stops the workers too.
        let mut seen = 0;
        in_order(
            1000,
            4,
            4,
            |i| i,
            |_| {
                seen += 1;
                seen < 10
            },
        );
        assert_eq!(seen, 10);
    }
}
