//! What the benchmarks measure a process by, read from Linux `/proc`: its CPU time, its resident
//! memory, and how busy the whole machine was (to tell a quiet run from a disturbed one). Every
//! reader returns `None` where `/proc` is missing or unreadable (not Linux, the process gone).

/// utime + stime of a process (`"self"` or a pid), in seconds.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime
    // are fields 14 and 15, in USER_HZ ticks (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Resident set size of a process (`VmRSS`), in MiB.
pub fn rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// Busy CPU seconds of the whole machine since boot (user, nice, system, irq, softirq, steal).
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> =
        stat.lines().next()?.strip_prefix("cpu ")?.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let busy = [0, 1, 2, 5, 6, 7].iter().map(|&i| ticks.get(i).copied().unwrap_or(0.0)).sum::<f64>();
    Some(busy / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_the_machine() {
        let before = cpu_secs("self").expect("/proc/self/stat");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_secs("self").unwrap() >= before);
        assert!(rss_mib("self").unwrap() > 0.0);
        assert!(machine_busy_secs().unwrap() > 0.0);
        assert_eq!(cpu_secs("not-a-pid"), None);
        assert_eq!(rss_mib("not-a-pid"), None);
    }
}
