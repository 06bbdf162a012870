//! Which share of a run this process takes: `--shard K/N`, or `--shard auto` from the
//! scheduler that started it (a Slurm job array, srun's tasks, a Kubernetes Indexed Job).
//!
//! Shard K of N takes images K-1, K-1+N, ... of the sorted list; `rcnn merge` joins the N.

use std::str::FromStr;

/// Where K and N come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// Shard `k` (1-based) of `n`.
    Fixed { k: usize, n: usize },
    /// From the scheduler's environment ([`from_env`]).
    Auto,
}

/// The number of shards, where the scheduler does not say it (a Kubernetes Indexed Job tells a
/// pod its index only) or should not (a Slurm array task resubmitted alone, `--array=3`, would
/// be told it is 1 of 1).
pub const K8S_COUNT_VAR: &str = "RCNN_SHARD_COUNT";

/// The most shards a run may have: Kubernetes' limit on an Indexed Job's completions, and far
/// above Slurm's default MaxArraySize. Every N is checked where it is read (`--shard`, the
/// environment, a shard's shard.json), so that no count of 4 billion reaches a loop over N.
pub const MAX_SHARDS: usize = 100_000;

/// `(k, n)` when `1 <= k <= n <= MAX_SHARDS`; `what` says where they were read.
pub fn check(k: usize, n: usize, what: &str) -> Result<(usize, usize), String> {
    if n > MAX_SHARDS {
        return Err(format!(
            "{what}: {n} shards, more than the {MAX_SHARDS} a run may have"
        ));
    }
    if k == 0 || k > n {
        return Err(format!("{what}: shard {k}/{n}: want 1 <= K <= N"));
    }
    Ok((k, n))
}

impl FromStr for ShardSpec {
    type Err = String;

    /// `K/N` with 1 <= K <= N, or `auto`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "auto" {
            return Ok(ShardSpec::Auto);
        }
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: want K/N (e.g. 3/8) or auto"))?;
        let number = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{x}` is not a number"))
        };
        let (k, n) = check(number(k)?, number(n)?, "--shard")?;
        Ok(ShardSpec::Fixed { k, n })
    }
}

impl ShardSpec {
    /// `(K, N)`, reading the process's environment for `auto`.
    pub fn resolve(self) -> Result<(usize, usize), String> {
        match self {
            ShardSpec::Fixed { k, n } => Ok((k, n)),
            ShardSpec::Auto => from_env(|v| std::env::var(v).ok()),
        }
    }
}

/// `--shard` resolved to `(K, N)`, `None` for a whole run; `auto` says which shard it found.
pub fn resolve(spec: Option<ShardSpec>) -> Result<Option<(usize, usize)>, String> {
    let shard = spec.map(ShardSpec::resolve).transpose()?;
    if let (Some(ShardSpec::Auto), Some((k, n))) = (spec, shard) {
        tracing::info!("--shard auto: shard {k} of {n}");
    }
    Ok(shard)
}

/// The shard (1-based) of `n` that takes item `index` (0-based) of a run.
pub fn owner(index: usize, n: usize) -> usize {
    index % n + 1
}

/// The items that `shard` takes (all of them for a whole run), in their order.
pub fn share<T>(items: Vec<T>, shard: Option<(usize, usize)>) -> Vec<T> {
    match shard {
        Some((k, n)) => items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| owner(*i, n) == k)
            .map(|(_, x)| x)
            .collect(),
        None => items,
    }
}

/// `(K, N)` from a scheduler's variables (`var` looks one up), in this order:
/// - a Slurm job array (`sbatch --array=A-B[:S]`): K from SLURM_ARRAY_TASK_ID's place in the
///   range (SLURM_ARRAY_TASK_MIN, _STEP), N = SLURM_ARRAY_TASK_COUNT; the array must be one
///   evenly stepped range, or images would be lost between shards. With `RCNN_SHARD_COUNT=N`
///   set, K = SLURM_ARRAY_TASK_ID of an `--array=1-N`, so that one failed index can be
///   resubmitted alone (`--array=3`);
/// - a Kubernetes Indexed Job: K = JOB_COMPLETION_INDEX + 1, N from `RCNN_SHARD_COUNT`;
/// - the tasks of one `srun` step: K = SLURM_PROCID + 1, N = SLURM_NTASKS (only inside a step,
///   SLURM_STEP_ID set and not the batch script's, so that a batch script run directly with
///   --ntasks does not quietly take a quarter of the images).
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<(usize, usize), String> {
    let (k, n) = from_env_unchecked(var)?;
    check(k, n, "--shard auto")
}

fn from_env_unchecked(var: impl Fn(&str) -> Option<String>) -> Result<(usize, usize), String> {
    let number = |name: &str| -> Result<Option<usize>, String> {
        match var(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map(Some)
                .map_err(|_| format!("--shard auto: {name}={v} is not a number")),
        }
    };
    let need = |name: &str, why: &str| -> Result<usize, String> {
        number(name)?.ok_or_else(|| format!("--shard auto: {name} is not set ({why})"))
    };
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        // With the count given, the task ID is the shard: any index can be resubmitted alone.
        if let Some(n) = number(K8S_COUNT_VAR)? {
            if id == 0 || id > n {
                return Err(format!(
                    "--shard auto: array task {id} with {K8S_COUNT_VAR}={n}: the array's task \
                     IDs are the shards, 1..={n} (sbatch --array=1-{n})"
                ));
            }
            return Ok((id, n));
        }
        let min = need("SLURM_ARRAY_TASK_MIN", "Slurm sets it in array tasks")?;
        let count = need("SLURM_ARRAY_TASK_COUNT", "Slurm sets it in array tasks")?;
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let max = number("SLURM_ARRAY_TASK_MAX")?;
        let even = id >= min
            && (id - min).is_multiple_of(step)
            && max.is_none_or(|max| max >= min && (max - min) / step + 1 == count);
        if !even || count == 0 || (id - min) / step >= count {
            return Err(format!(
                "--shard auto: array task {id} of a job array that is not one evenly stepped \
                 range (min {min}, step {step}, {count} tasks{}): submit --array=A-B or \
                 A-B:S so that every shard has its task",
                max.map_or(String::new(), |m| format!(", max {m}"))
            ));
        }
        return Ok(((id - min) / step + 1, count));
    }
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let n = need(
            K8S_COUNT_VAR,
            "a Kubernetes Indexed Job gives the index only: set it to the Job's completions",
        )?;
        if index >= n {
            return Err(format!(
                "--shard auto: JOB_COMPLETION_INDEX {index} is not below {K8S_COUNT_VAR}={n}"
            ));
        }
        return Ok((index + 1, n));
    }
    let in_step =
        var("SLURM_STEP_ID").is_some_and(|s| !s.trim().is_empty() && s.trim() != "4294967294");
    if let (true, Some(rank), Some(n)) = (in_step, number("SLURM_PROCID")?, number("SLURM_NTASKS")?)
    {
        if rank >= n {
            return Err(format!(
                "--shard auto: SLURM_PROCID {rank} is not below SLURM_NTASKS {n}"
            ));
        }
        return Ok((rank + 1, n));
    }
    Err(format!(
        "--shard auto: no scheduler says which shard this is: run it as a Slurm array task \
         (sbatch --array=1-N), as one of srun's tasks (srun --ntasks=N), or in a Kubernetes \
         Indexed Job (JOB_COMPLETION_INDEX, with {K8S_COUNT_VAR} set to the completions); or \
         give --shard K/N"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn shards_take_every_nth_item_from_the_kth() {
        let items: Vec<usize> = (0..7).collect();
        assert_eq!(share(items.clone(), Some((1, 3))), [0, 3, 6]);
        assert_eq!(share(items.clone(), Some((3, 3))), [2, 5]);
        assert_eq!(share(items.clone(), None), items);
        assert_eq!(owner(5, 3), 3);
        assert_eq!(resolve(None), Ok(None));
        assert_eq!(
            resolve(Some(ShardSpec::Fixed { k: 2, n: 4 })),
            Ok(Some((2, 4)))
        );
    }

    #[test]
    fn fixed_and_auto_parse() {
        assert_eq!("3/8".parse(), Ok(ShardSpec::Fixed { k: 3, n: 8 }));
        assert_eq!(" auto".parse(), Ok(ShardSpec::Auto));
        assert!("0/4"
            .parse::<ShardSpec>()
            .unwrap_err()
            .contains("1 <= K <= N"));
        assert!("5/4".parse::<ShardSpec>().is_err());
        assert!("x/4".parse::<ShardSpec>().unwrap_err().contains("`x`"));
        assert!("3".parse::<ShardSpec>().unwrap_err().contains("K/N"));
    }

    #[test]
    fn shard_counts_past_the_bound_are_refused_wherever_they_are_read() {
        // `--shard 1/4000000000` and RCNN_SHARD_COUNT=4000000000 were accepted; a shard.json
        // saying so made `rcnn merge` take 23 GB.
        let err = "1/4000000000".parse::<ShardSpec>().unwrap_err();
        assert!(err.contains("more than the 100000"), "{err}");
        assert_eq!(
            "3/100000".parse(),
            Ok(ShardSpec::Fixed { k: 3, n: 100_000 })
        );
        let err = from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("RCNN_SHARD_COUNT", "4000000000"),
        ]))
        .unwrap_err();
        assert!(err.contains("more than the 100000"), "{err}");
        let err = from_env(env(&[
            ("JOB_COMPLETION_INDEX", "0"),
            ("RCNN_SHARD_COUNT", "4000000000"),
        ]))
        .unwrap_err();
        assert!(err.contains("more than the 100000"), "{err}");
        assert!(check(1, 4_000_000_000, "shard.json").is_err());
    }

    #[test]
    fn slurm_arrays_from_zero_one_or_stepped() {
        let array = |id: &str, min: &str, max: &str, step: &str, count: &str| {
            from_env(env(&[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", min),
                ("SLURM_ARRAY_TASK_MAX", max),
                ("SLURM_ARRAY_TASK_STEP", step),
                ("SLURM_ARRAY_TASK_COUNT", count),
            ]))
        };
        assert_eq!(array("0", "0", "3", "1", "4"), Ok((1, 4)));
        assert_eq!(array("3", "0", "3", "1", "4"), Ok((4, 4)));
        assert_eq!(array("1", "1", "6", "1", "6"), Ok((1, 6)));
        assert_eq!(array("10", "0", "15", "5", "4"), Ok((3, 4)));
        // --array=0,5,7: three tasks that are no stepped range.
        let err = array("5", "0", "7", "1", "3").unwrap_err();
        assert!(err.contains("evenly stepped"), "{err}");
        // A task outside its own range.
        assert!(array("7", "0", "15", "5", "4").is_err());
        let err = from_env(env(&[("SLURM_ARRAY_TASK_ID", "2")])).unwrap_err();
        assert!(err.contains("SLURM_ARRAY_TASK_MIN"), "{err}");
        // Task 3 resubmitted alone (--array=3): Slurm says 1 of 1; the count set says 3 of 4.
        let alone = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_MIN", "3"),
                ("SLURM_ARRAY_TASK_MAX", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "1"),
            ];
            pairs.extend_from_slice(extra);
            from_env(env(&pairs))
        };
        assert_eq!(alone(&[]), Ok((1, 1)));
        assert_eq!(alone(&[(K8S_COUNT_VAR, "4")]), Ok((3, 4)));
        assert!(alone(&[(K8S_COUNT_VAR, "2")])
            .unwrap_err()
            .contains("--array=1-2"));
    }

    #[test]
    fn kubernetes_indexed_jobs_and_srun_steps() {
        assert_eq!(
            from_env(env(&[("JOB_COMPLETION_INDEX", "0"), (K8S_COUNT_VAR, "4")])),
            Ok((1, 4))
        );
        let err = from_env(env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap_err();
        assert!(err.contains(K8S_COUNT_VAR), "{err}");
        assert!(from_env(env(&[("JOB_COMPLETION_INDEX", "4"), (K8S_COUNT_VAR, "4")])).is_err());
        let srun = [
            ("SLURM_STEP_ID", "0"),
            ("SLURM_PROCID", "2"),
            ("SLURM_NTASKS", "3"),
        ];
        assert_eq!(from_env(env(&srun)), Ok((3, 3)));
        // The batch script itself (no step, or the batch step) is no shard of anything.
        let batch = [("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4")];
        assert!(from_env(env(&batch)).is_err());
        let batch_step = [
            ("SLURM_STEP_ID", "4294967294"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
        ];
        assert!(from_env(env(&batch_step)).is_err());
        let err = from_env(env(&[])).unwrap_err();
        assert!(
            err.contains("Slurm") && err.contains("JOB_COMPLETION_INDEX"),
            "{err}"
        );
        let err = from_env(env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err();
        assert!(err.contains("SLURM_ARRAY_TASK_ID=x"), "{err}");
    }
}
