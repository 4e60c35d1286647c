//! Which processes map or hold open a share, as far as /proc shows (processes of other
//! users are invisible without privileges).

use std::collections::BTreeMap;

/// A process using a share.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct User {
    pub pid: u32,
    pub comm: String,
}

/// Map from share name (with leading `/`) to the processes using it.
pub fn users_by_share() -> BTreeMap<String, Vec<User>> {
    let mut map: BTreeMap<String, Vec<User>> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut names = Vec::new();
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            for line in maps.lines() {
                if let Some(i) = line.find("/dev/shm/") {
                    names.push(
                        line[i + "/dev/shm".len()..]
                            .trim_end_matches(" (deleted)")
                            .to_string(),
                    );
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    if let Some(rest) = target.to_str().and_then(|t| t.strip_prefix("/dev/shm")) {
                        names.push(rest.trim_end_matches(" (deleted)").to_string());
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        for n in names {
            map.entry(n).or_default().push(User {
                pid,
                comm: comm.clone(),
            });
        }
    }
    map
}
