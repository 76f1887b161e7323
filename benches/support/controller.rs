//! The controller side of a benchmarked `cairn` run, watched from /proc:
//! the peak resident memory of cairn itself and of cairn plus every
//! process descended from it (its ssh masters), how many ssh processes
//! were alive at that peak, and which ssh processes it started, so the
//! benchmark can check that none outlives it.
//!
//! A helper thread samples every [`SAMPLE_EVERY`] while cairn runs,
//! summing `VmRSS` (the `rss` field of `/proc/PID/stat`). Finding
//! descendants needs every process's parent, which only `/proc/*/stat`
//! gives (this kernel has no `/proc/PID/task/*/children`); at 200 hosts
//! that is thousands of processes, mostly the hosts', so each sample reads
//! the `stat` of only the processes it has not seen before and of cairn's
//! descendants (see [`Tree`]). The watch measures whatever processes are
//! there: one ssh per host, or as few as the transport keeps open.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the resident sizes are summed. Every 100 ms, not faster: the
/// watch runs only beside cairn, never beside a floor, so its CPU is a bias
/// against cairn in every ratio; at 25 ms it cost 5 s of CPU in S1 at 200
/// hosts (about 3% of S1's wall time on 2 cores). cairn's own peak is also
/// read from its `VmHWM`, which misses nothing; the sum over its ssh
/// processes can miss a peak shorter than a sample.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// How often the proportional set sizes are summed too (reading
/// `smaps_rollup` makes the kernel walk the page tables: too costly for
/// every sample at 200 processes).
const PSS_PERIOD: Duration = Duration::from_secs(1);

/// [`PSS_PERIOD`] in samples, so that it follows [`SAMPLE_EVERY`].
const PSS_EVERY: usize = (PSS_PERIOD.as_millis() / SAMPLE_EVERY.as_millis()) as usize;
const _: () = assert!(PSS_EVERY > 0, "a sample period longer than PSS_PERIOD");

/// A process, told apart from a later one that reuses its pid by its start
/// time (clock ticks since boot).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Process {
    pub pid: i32,
    start: u64,
    pub comm: String,
}

/// What the watch saw over a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peaks {
    /// cairn's own highest sampled resident size, bytes.
    pub cairn: u64,
    /// cairn's own peak resident size as the kernel keeps it (`VmHWM` of
    /// its memory after `exec`), as last read, bytes: the exact peak, where
    /// [`Peaks::cairn`] is only what the samples happened to catch. (Not
    /// `wait4`'s `ru_maxrss`: Linux counts in it the peak of the memory
    /// the process had before `exec`, here the benchmark's own, which
    /// holds the S1 floor's tar.)
    pub cairn_hwm: u64,
    /// The highest sampled sum of cairn's and its descendants' resident sizes, bytes.
    pub total: u64,
    /// ssh processes alive in the sample where `total` peaked.
    pub ssh_at_peak: usize,
    /// Their resident sizes summed, bytes.
    pub ssh_bytes_at_peak: u64,
    /// The highest sampled sum of cairn's and its descendants' proportional
    /// set sizes (`Pss`: each shared page divided among the processes
    /// mapping it), bytes, sampled every [`PSS_EVERY`] samples (none for
    /// a run shorter than that). `VmRSS` counts the ssh binary's and its
    /// libraries' pages once per process; this is what they hold together.
    pub total_pss: Option<u64>,
    /// The most ssh processes alive in any one sample.
    pub most_ssh: usize,
    /// Every ssh process seen descended from cairn.
    pub ssh_started: Vec<Process>,
    /// cairn's own CPU time (user + system) at its last sample.
    pub cairn_cpu: Duration,
    /// The ssh processes' own CPU time, each as last seen (they may spend
    /// a little more in the [`SAMPLE_EVERY`] before they end), summed.
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
    // At 200 hosts the 2 cores are saturated by the hosts' work and a
    // watch at normal priority falls far behind its period: the watch is
    // light (a few ms per sample), so it goes ahead of them.
    // SAFETY: gettid and setpriority have no memory preconditions; failing
    // (not root) only leaves the priority as it was.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, u32::try_from(tid).unwrap_or(0), -10);
    }
    let cpu0 = thread_cpu();
    let mut peaks = Peaks::default();
    let mut tree = Tree::new(root);
    // Every ssh process seen, with the most CPU time it was seen to have.
    let mut ssh_seen: HashMap<(i32, u64), (Process, u64)> = HashMap::new();
    let mut cairn_ticks = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(cairn) = stat(root).filter(|s| s.state != 'Z') else {
            break;
        };
        cairn_ticks = cairn.cpu;
        let mut total = cairn.resident;
        let (mut ssh, mut ssh_bytes) = (0, 0);
        for (pid, s) in tree.walk() {
            total += s.resident;
            if s.comm == "ssh" {
                ssh += 1;
                ssh_bytes += s.resident;
                let process = Process {
                    pid,
                    start: s.start,
                    comm: s.comm,
                };
                let seen = ssh_seen.entry((pid, s.start)).or_insert((process, 0));
                seen.1 = seen.1.max(s.cpu);
            }
        }
        if peaks.samples % PSS_EVERY == PSS_EVERY - 1 {
            let pss = std::iter::once(root)
                .chain(tree.descendants.iter().copied())
                .filter_map(proportional)
                .sum();
            peaks.total_pss = Some(peaks.total_pss.unwrap_or(0).max(pss));
        }
        peaks.samples += 1;
        peaks.cairn = peaks.cairn.max(cairn.resident);
        if let Some(hwm) = high_water(root) {
            peaks.cairn_hwm = peaks.cairn_hwm.max(hwm);
        }
        peaks.most_ssh = peaks.most_ssh.max(ssh);
        if total > peaks.total {
            peaks.total = total;
            peaks.ssh_at_peak = ssh;
            peaks.ssh_bytes_at_peak = ssh_bytes;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    peaks.cairn_cpu = ticks(cairn_ticks);
    peaks.ssh_cpu = ticks(ssh_seen.values().map(|(_, cpu)| cpu).sum());
    peaks.ssh_started = ssh_seen.into_values().map(|(p, _)| p).collect();
    peaks.ssh_started.sort_by_key(|p| p.pid);
    peaks.watch_cpu = thread_cpu().saturating_sub(cpu0);
    peaks
}

/// The processes descended from one root, kept up to date cheaply: each
/// walk lists `/proc` but reads the `stat` of only the processes it has
/// not seen before (to learn their parent) and of the descendants (their
/// size and CPU now). A pid that leaves the listing is forgotten, so a
/// pid reused later is looked at afresh (the walks are milliseconds
/// apart; pids are reused only after all others have been handed out).
struct Tree {
    root: i32,
    /// Every pid listed in the last walk: is it descended from `root`?
    descended: HashMap<i32, bool>,
    /// The descendants found by the last walk.
    descendants: Vec<i32>,
}

impl Tree {
    fn new(root: i32) -> Tree {
        Tree {
            root,
            descended: HashMap::new(),
            descendants: Vec::new(),
        }
    }

    /// The descendants of the root now, with their `stat`.
    fn walk(&mut self) -> Vec<(i32, Stat)> {
        let listed: HashSet<i32> = all_pids().into_iter().collect();
        self.descended.retain(|pid, _| listed.contains(pid));
        let mut new: HashMap<i32, i32> = HashMap::new();
        for pid in listed {
            if !self.descended.contains_key(&pid)
                && let Some(s) = stat(pid)
            {
                new.insert(pid, s.ppid);
            }
        }
        // A new process may be the child of another new one: resolve
        // each by following parents until a known one (or the root).
        for pid in new.keys().copied().collect::<Vec<_>>() {
            let mut chain = vec![pid];
            let mut parent = new[&pid];
            let descended = loop {
                if parent == self.root {
                    break true;
                }
                if let Some(known) = self.descended.get(&parent) {
                    break *known;
                }
                match new.get(&parent) {
                    Some(grandparent) if !chain.contains(&parent) => {
                        chain.push(parent);
                        parent = *grandparent;
                    }
                    _ => break false,
                }
            };
            for p in chain {
                self.descended.insert(p, descended);
            }
        }
        let found: Vec<(i32, Stat)> = self
            .descended
            .iter()
            .filter(|(_, descended)| **descended)
            .filter_map(|(pid, _)| Some((*pid, stat(*pid)?)))
            .collect();
        self.descendants = found.iter().map(|(pid, _)| *pid).collect();
        found
    }
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
    /// Resident size (`VmRSS`), bytes.
    resident: u64,
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
        resident: tick(24)? * page_size(),
    })
}

/// A process's peak resident size since its `exec` (`VmHWM`), bytes.
fn high_water(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A process's proportional set size (`Pss` of `smaps_rollup`), bytes.
fn proportional(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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

/// CPU time (user and system) of this process's children that have ended
/// and been waited for, and of theirs.
pub(crate) fn cpu_of_reaped_children() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage);
        usage
    };
    let of = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    of(usage.ru_utime) + of(usage.ru_stime)
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
        },
    )
}

/// A finished process's CPU time (with its waited-for children's). Not its
/// `ru_maxrss`: Linux counts in it the memory the process had before `exec`
/// (for a child spawned by `vfork`, its parent's), see [`Peaks::cairn_hwm`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub user: Duration,
    pub system: Duration,
}
