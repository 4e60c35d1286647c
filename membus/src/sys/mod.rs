//! The OS layer: the only module that calls libc, rustix or memmap2.
//!
//! Well-kept crates do what they can: [`shm`] opens, sizes, locks and maps objects through
//! `rustix` and `memmap2` without unsafe code of its own. Raw code stays only where no crate
//! does the job: [`copy`] (byte copies made of atomic accesses, so that racing with another
//! process is not undefined behaviour), [`pthread`] (glibc's process-shared mutex and
//! condition in place inside a share, as libmembus lays them out) and [`futex`] (waits on a
//! word another process writes).
//!
//! It knows nothing of share layouts. [`shm::Segment`] owns one named POSIX shared-memory
//! object and its mapping; [`pthread::LockPair`] drives a process-shared glibc mutex and
//! condition that live inside a segment; [`copy`] moves bytes in and out of memory that
//! other processes may be writing; [`clock`] makes CLOCK_REALTIME deadlines.
//!
//! membus needs Linux with glibc: libmembus's memmsg, memcmd and memkv headers embed glibc
//! `pthread_mutex_t`/`pthread_cond_t` objects whose futex protocol only glibc speaks, so a
//! stub for other platforms could not interoperate with anything. Other targets fail to
//! build with a message saying so instead of failing at run time.

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
compile_error!(
    "membus runs on Linux with glibc only: libmembus shares embed glibc pthread objects \
     (see the wire specification, section 2.6)"
);

pub(crate) mod clock;
pub(crate) mod copy;
pub(crate) mod futex;
pub(crate) mod pthread;
pub(crate) mod shm;

use std::io;

/// A random non-zero 64-bit session id (the wire format recommends any random non-zero i64).
pub(crate) fn random_session_id() -> i64 {
    loop {
        let mut buf = [0u8; 8];
        let n = rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty());
        let id = if n.is_ok_and(|n| n == buf.len()) {
            i64::from_ne_bytes(buf)
        } else {
            // getrandom cannot fail for 8 bytes on Linux ≥ 3.17 once the pool is ready;
            // fall back to time and pid rather than fail a create over a session id.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(1);
            t ^ (i64::from(std::process::id()) << 32)
        };
        if id != 0 {
            return id;
        }
    }
}

/// Whether process (or thread) `id` still runs, as far as this process can tell.
///
/// `kill(id, 0)` says whether the id exists (EPERM: it exists but belongs to another
/// user). A process that was killed but not yet reaped by its parent (a zombie) still has
/// an id, so `/proc/<id>/stat` is read too: state `Z` or `X` counts as dead. Ids are those
/// of this process's PID namespace; a peer in another namespace sharing /dev/shm cannot be
/// judged (its id may name an unrelated process here, or none).
pub(crate) fn process_alive(id: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(id) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // Signal 0: only checks that the target exists and may be signalled.
    let Some(target) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    if rustix::process::test_kill_process(target) == Err(rustix::io::Errno::SRCH) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the command name, which ends with the last ')'.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}
pub(crate) mod cpu;
