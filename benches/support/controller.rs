//! The controller side of a benchmarked `cairn` run, watched from /proc:
//! the peak resident memory of cairn itself and of cairn plus every
//! process descended from it (its ssh masters), how many ssh processes
//! were alive at that peak, and which ssh processes it started, so the
//! benchmark can check that none outlives it.
//!
//! A helper thread samples while cairn runs. Finding descendants needs
//! every process's parent, which only a walk of `/proc/*/stat` gives (this
//! kernel has no `/proc/PID/task/*/children`); at 200 hosts that is a
//! couple of thousand files, so the walk runs every [`DISCOVER_EVERY`]
//! while the resident sizes of the processes already found are summed
//! every [`SAMPLE_EVERY`] (one `/proc/PID/statm` each, `VmRSS`). The
//! watch measures whatever processes are there: one ssh per host, or as
//! few as the transport keeps open.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the resident sizes are summed.
const SAMPLE_EVERY: Duration = Duration::from_millis(25);

/// How often `/proc` is walked for new descendants.
const DISCOVER_EVERY: Duration = Duration::from_millis(100);

/// A process, told apart from a later one that reuses its pid by its start
/// time (clock ticks since boot).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Process {
    pub pid: i32,
    start: u64,
    pub comm: String,
}

/// A descendant found by a walk of /proc, with its CPU time then (ticks).
struct Found {
    process: Process,
    cpu: u64,
}

/// What the watch saw over a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peaks {
    /// cairn's own highest sampled resident size, bytes.
    pub cairn: u64,
    /// The highest sampled sum of cairn's and its descendants' resident sizes, bytes.
    pub total: u64,
    /// ssh processes alive in the sample where `total` peaked.
    pub ssh_at_peak: usize,
    /// Their resident sizes summed, bytes.
    pub ssh_bytes_at_peak: u64,
    /// The most ssh processes alive in any one sample.
    pub most_ssh: usize,
    /// Every ssh process seen descended from cairn.
    pub ssh_started: Vec<Process>,
    /// cairn's own CPU time (user + system) at its last sample.
    pub cairn_cpu: Duration,
    /// The ssh processes' own CPU time, each as last seen (they may spend
    /// a little more after the last walk of /proc, up to [`DISCOVER_EVERY`]
    /// before they end), summed.
    pub ssh_cpu: Duration,
    pub samples: usize,
    /// CPU time the watch itself spent walking /proc (it shares the cores).
    pub watch_cpu: Duration,
}

/// A running watch of one process and its descendants.
pub(crate) struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Peaks>,
}

impl Watch {
    /// Starts watching `root` (a pid) and everything descended from it.
    pub(crate) fn start(root: i32) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || watch(root, &stopping));
        Watch { stop, thread }
    }

    /// Stops the watch and returns what it saw.
    pub(crate) fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the memory watch thread panicked")
    }
}

fn watch(root: i32, stop: &AtomicBool) -> Peaks {
    let cpu0 = thread_cpu();
    let mut peaks = Peaks::default();
    let mut descendants: Vec<Process> = Vec::new();
    // Every ssh process seen, with the most CPU time it was seen to have.
    let mut ssh_seen: HashMap<Process, u64> = HashMap::new();
    let mut last_walk: Option<Instant> = None;
    let mut cairn_ticks = 0;
    while !stop.load(Ordering::Relaxed) {
        if last_walk.is_none_or(|t| t.elapsed() >= DISCOVER_EVERY) {
            last_walk = Some(Instant::now());
            let found = descendants_of(root);
            for f in found.iter().filter(|f| f.process.comm == "ssh") {
                let cpu = ssh_seen.entry(f.process.clone()).or_default();
                *cpu = (*cpu).max(f.cpu);
            }
            descendants = found.into_iter().map(|f| f.process).collect();
        }
        let Some(cairn_stat) = stat(root).filter(|s| s.state != 'Z') else {
            break;
        };
        cairn_ticks = cairn_stat.cpu;
        let Some(cairn) = resident(root) else { break };
        let mut total = cairn;
        let (mut ssh, mut ssh_bytes) = (0, 0);
        for p in &descendants {
            if let Some(bytes) = resident(p.pid) {
                total += bytes;
                if p.comm == "ssh" {
                    ssh += 1;
                    ssh_bytes += bytes;
                }
            }
        }
        peaks.samples += 1;
        peaks.cairn = peaks.cairn.max(cairn);
        peaks.most_ssh = peaks.most_ssh.max(ssh);
        if total > peaks.total {
            peaks.total = total;
            peaks.ssh_at_peak = ssh;
            peaks.ssh_bytes_at_peak = ssh_bytes;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    peaks.cairn_cpu = ticks(cairn_ticks);
    peaks.ssh_cpu = ticks(ssh_seen.values().sum());
    peaks.ssh_started = ssh_seen.into_keys().collect();
    peaks.ssh_started.sort_by_key(|p| p.pid);
    peaks.watch_cpu = thread_cpu().saturating_sub(cpu0);
    peaks
}

/// Those of `processes` that are still running (same pid, same start
/// time; a zombie counts as gone).
pub(crate) fn still_alive(processes: &[Process]) -> Vec<Process> {
    processes
        .iter()
        .filter(|p| {
            stat(p.pid).is_some_and(|s| s.start == p.start && s.state != 'Z' && s.comm == p.comm)
        })
        .cloned()
        .collect()
}

/// Every process descended from `root` (not `root` itself).
fn descendants_of(root: i32) -> Vec<Found> {
    let mut children: HashMap<i32, Vec<(i32, Stat)>> = HashMap::new();
    for pid in all_pids() {
        if let Some(s) = stat(pid) {
            children.entry(s.ppid).or_default().push((pid, s));
        }
    }
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (pid, s) in children.remove(&parent).unwrap_or_default() {
            parents.push(pid);
            found.push(Found {
                process: Process {
                    pid,
                    start: s.start,
                    comm: s.comm,
                },
                cpu: s.cpu,
            });
        }
    }
    found
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The fields of `/proc/PID/stat` the watch needs.
struct Stat {
    comm: String,
    state: char,
    ppid: i32,
    start: u64,
    /// utime + stime, clock ticks.
    cpu: u64,
    /// cutime + cstime, clock ticks: the CPU of the children it waited for.
    children_cpu: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold ") ".
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 2..)?.split(' ').collect();
    // Fields after the name, counted from 3 (state) as in proc(5).
    let field = |n: usize| rest.get(n - 3).copied();
    let tick = |n: usize| field(n).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        start: tick(22)?,
        cpu: tick(14)? + tick(15)?,
        children_cpu: tick(16)? + tick(17)?,
    })
}

/// A process's resident size (`VmRSS`), bytes.
fn resident(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split(' ').nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100)
}

/// CPU time (own, and of waited-for children) of the processes whose
/// parent is one of `parents`: for the test hosts, their init (sshd) and,
/// once a run's sessions have ended, everything that ran on them.
pub(crate) fn cpu_of_children_of(parents: &HashSet<i32>) -> Duration {
    let total: u64 = all_pids()
        .into_iter()
        .filter_map(stat)
        .filter(|s| parents.contains(&s.ppid))
        .map(|s| s.cpu + s.children_cpu)
        .sum();
    ticks(total)
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / ticks_per_second())
}

/// The pids of this process's children named `comm`.
pub(crate) fn own_children_named(comm: &str) -> HashSet<i32> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    all_pids()
        .into_iter()
        .filter(|pid| stat(*pid).is_some_and(|s| s.ppid == me && s.comm == comm))
        .collect()
}

fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut t) };
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Waits for the child `pid` and returns its exit status (as `wait`
/// encodes it) and its resource usage: its own and that of the children
/// it waited for (`wait4` reports both together), so for cairn that is
/// cairn and its ssh masters.
pub(crate) fn wait_with_usage(pid: i32) -> (i32, Usage) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be written over.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid to write into.
        let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::Interrupted,
            "wait4({pid}): {err}"
        );
    }
    let time = |t: libc::timeval| {
        Duration::from_micros(
            u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000
                + u64::try_from(t.tv_usec).unwrap_or(0),
        )
    };
    (
        status,
        Usage {
            user: time(usage.ru_utime),
            system: time(usage.ru_stime),
            max_resident: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
        },
    )
}

/// A finished process's resource usage (with its waited-for children).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub user: Duration,
    pub system: Duration,
    /// The largest peak resident size of the process or any one of its
    /// waited-for children (not their sum), bytes: for cairn, its own peak.
    pub max_resident: u64,
}
