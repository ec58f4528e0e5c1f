//! Process figures: the open-files limit, and a process's memory and CPU from `/proc`.

use std::io;

/// Raises the soft open-files limit to the hard one and returns the new soft limit.
///
/// Every connection is a file; the usual soft limit (1,024) stops a load run long before
/// the hard limit does.
///
/// # Errors
/// The `getrlimit`/`setrlimit` failure.
pub fn raise_nofile_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
///
/// # Errors
/// The process is gone, `/proc` is missing, or the line is absent or unreadable.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/status has no readable VmRSS line"),
        )
    })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time (user + system) of process `pid` in clock ticks (`/proc/<pid>/stat`).
///
/// # Errors
/// The process is gone or the line cannot be read.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    cpu_split(pid).map(|(user, system)| user + system)
}

/// CPU time of process `pid` in clock ticks, split: `(user, system)`. The split says
/// whether a network process spends its time in its own code or in the kernel's sockets.
///
/// # Errors
/// The process is gone or the line cannot be read.
pub fn cpu_split(pid: u32) -> io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat is not in the expected format"),
        )
    })
}

/// Fields 14 (utime) and 15 (stime), counted after the `)` that ends the command name,
/// since the name itself may hold spaces.
fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    // After ")" the fields start at 3 (state); utime is field 14, i.e. the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// Clock ticks per second for [`cpu_ticks`]; Linux reports `USER_HZ`, 100 on every
/// mainstream architecture.
pub const TICKS_PER_SEC: f64 = 100.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\thashgate\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some((250, 75)));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(rss_kib(me).expect("own status") > 0);
        assert!(cpu_ticks(me).is_ok());
    }
}
