//! Whether a model fits in this machine's memory, for the traffic lights of the Models window.

/// How comfortably a model fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Well within memory, with room for the rest of the system.
    Good,
    /// It fits, but leaves little for anything else.
    Tight,
    /// It will not fit (or only by swapping).
    No,
}

/// A model of `model_bytes` on disk needs about that much memory plus working space (KV cache,
/// activations): a quarter more and 256 MiB.
pub fn fit(model_bytes: u64, total_memory: u64) -> Fit {
    let need = model_bytes + model_bytes / 4 + (256 << 20);
    if need * 2 <= total_memory {
        Fit::Good
    } else if need * 5 <= total_memory * 4 {
        Fit::Tight
    } else {
        Fit::No
    }
}

/// This machine's memory in bytes, where the system tells (Linux: /proc/meminfo).
pub fn total_memory() -> Option<u64> {
    meminfo_field("MemTotal:")
}

/// This process's resident memory in bytes, where the system tells (Linux: /proc/self/status).
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmRSS:")
}

fn meminfo_field(name: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, name)
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_models_fit_and_big_ones_do_not() {
        const GB: u64 = 1 << 30;
        assert_eq!(fit(100 << 20, 8 * GB), Fit::Good);
        assert_eq!(fit(6 * GB, 8 * GB), Fit::No);
        assert_eq!(fit(3 * GB + GB / 2, 8 * GB), Fit::Tight);
        assert_eq!(
            kib_field("MemTotal:  2048 kB\n", "MemTotal:"),
            Some(2048 * 1024)
        );
        if cfg!(target_os = "linux") {
            assert!(total_memory().unwrap() > resident_memory().unwrap());
        }
    }
}
