//! Resolving a container user (`name`, `uid`, `name:group`, `uid:gid`, …) against the image's
//! `/etc/passwd` and `/etc/group`, as docker does: uid, gid, supplementary groups and HOME.
//!
//! Pure: the caller reads the two files (inside the container, after `pivot_root`) and passes
//! their text; missing files are empty text. Follows passwd(5) and group(5).

use super::SandboxError;

/// The resolved identity of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PwEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PwEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(PwEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

struct GrEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> impl Iterator<Item = GrEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some(GrEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

/// Resolves `spec` (`""` means root) against the texts of `/etc/passwd` and `/etc/group`.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, SandboxError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let numeric = user_part.parse::<u32>().ok();
    let entry = passwd_entries(passwd)
        .find(|e| Some(e.uid) == numeric || (numeric.is_none() && e.name == user_part));
    let (uid, mut gid, home, name) = match (entry, numeric) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
        (None, Some(uid)) => (uid, 0, "/".to_string(), None),
        (None, None) => {
            return Err(SandboxError::User(format!(
                "unable to find user `{user_part}`: no matching entries in passwd file"
            )))
        }
    };
    let mut groups = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            let numeric = g.parse::<u32>().ok();
            gid = match group_entries(group)
                .find(|e| Some(e.gid) == numeric || (numeric.is_none() && e.name == g))
            {
                Some(e) => e.gid,
                None => numeric.ok_or_else(|| {
                    SandboxError::User(format!(
                        "unable to find group `{g}`: no matching entries in group file"
                    ))
                })?,
            };
        }
        _ => {
            // supplementary groups only when the group is not given, as docker does
            if let Some(name) = &name {
                for e in group_entries(group) {
                    if e.members.contains(&name.as_str())
                        && e.gid != gid
                        && !groups.contains(&e.gid)
                    {
                        groups.push(e.gid);
                    }
                }
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home: if home.is_empty() {
            "/".to_string()
        } else {
            home
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nbroken\n";
    const GROUP: &str = "root:x:0:\nadm:x:4:app\napp:x:1000:\nusers:x:100:app,other\n";

    fn r(spec: &str) -> Result<ExecUser, String> {
        resolve(spec, PASSWD, GROUP).map_err(|e| e.to_string())
    }

    type Want = Result<(u32, u32, &'static [u32], &'static str), &'static str>;

    #[test]
    fn table() {
        let cases: &[(&str, Want)] = &[
            ("", Ok((0, 0, &[], "/root"))),
            ("root", Ok((0, 0, &[], "/root"))),
            ("app", Ok((1000, 1000, &[4, 100], "/home/app"))),
            ("1000", Ok((1000, 1000, &[4, 100], "/home/app"))),
            ("app:users", Ok((1000, 100, &[], "/home/app"))),
            ("app:5", Ok((1000, 5, &[], "/home/app"))),
            ("4242", Ok((4242, 0, &[], "/"))),
            ("4242:4242", Ok((4242, 4242, &[], "/"))),
            (
                "nobody",
                Err("unable to find user `nobody`: no matching entries in passwd file"),
            ),
            (
                "app:nogroup",
                Err("unable to find group `nogroup`: no matching entries in group file"),
            ),
        ];
        for (spec, want) in cases {
            let got = r(spec).map(|u| (u.uid, u.gid, u.groups.clone(), u.home.clone()));
            let want = (*want)
                .map(|(u, g, gs, h)| (u, g, gs.to_vec(), h.to_string()))
                .map_err(str::to_string);
            assert_eq!(got, want, "user spec {spec:?}");
        }
    }
}
