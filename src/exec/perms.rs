//! Owners and modes as a Dockerfile names them: `COPY --chown=user:group`, `COPY --chmod=755` or
//! `--chmod=u=rwx,go=rx`, and `USER name[:group]`, resolved against the image's `/etc/passwd`
//! and `/etc/group` (given as text; this module reads no files).
//!
//! Rules (Docker's documentation of COPY and USER): a name must be in the image's files, a number
//! need not be; `--chown` without a group uses the uid as gid; `USER` without a group uses the
//! user's primary group from `/etc/passwd` (0 when the uid has no entry).

/// Why an owner or mode is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PermsError {
    #[error("unable to find user `{0}`: no matching entries in the image's `/etc/passwd`")]
    NoUser(String),
    #[error("unable to find group `{0}`: no matching entries in the image's `/etc/group`")]
    NoGroup(String),
    #[error("invalid mode `{0}`: expected octal such as `755` or symbolic such as `u=rwx,go=rx`")]
    BadMode(String),
    #[error("invalid owner `{0}`: expected `user`, `user:group`, `uid` or `uid:gid`")]
    BadOwner(String),
}

/// A passwd entry we care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Parses `/etc/passwd` text; malformed lines are skipped, as libc does.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// A group entry: name, gid, member names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses `/etc/group` text.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The image's account files.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub passwd: Vec<PasswdEntry>,
    pub group: Vec<GroupEntry>,
}

/// A resolved user for a process: uid, gid, supplementary groups, home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: Option<String>,
}

impl Accounts {
    fn uid_of(&self, user: &str) -> Result<u32, PermsError> {
        if let Ok(n) = user.parse::<u32>() {
            return Ok(n);
        }
        self.passwd
            .iter()
            .find(|p| p.name == user)
            .map(|p| p.uid)
            .ok_or_else(|| PermsError::NoUser(user.to_string()))
    }

    fn gid_of(&self, group: &str) -> Result<u32, PermsError> {
        if let Ok(n) = group.parse::<u32>() {
            return Ok(n);
        }
        self.group
            .iter()
            .find(|g| g.name == group)
            .map(|g| g.gid)
            .ok_or_else(|| PermsError::NoGroup(group.to_string()))
    }

    /// `--chown=user[:group]` → (uid, gid); without a group the gid is the uid.
    pub fn chown(&self, spec: &str) -> Result<(u32, u32), PermsError> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if u.is_empty() || g == Some("") {
            return Err(PermsError::BadOwner(spec.to_string()));
        }
        let uid = self.uid_of(u)?;
        let gid = match g {
            Some(g) => self.gid_of(g)?,
            None => uid,
        };
        Ok((uid, gid))
    }

    /// `USER user[:group]` for a process: without a group, the passwd entry's primary group and
    /// the groups that list the user as a member.
    pub fn process_user(&self, spec: &str) -> Result<ProcessUser, PermsError> {
        let spec = if spec.is_empty() { "0" } else { spec };
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if u.is_empty() {
            return Err(PermsError::BadOwner(spec.to_string()));
        }
        let uid = self.uid_of(u)?;
        let entry = self
            .passwd
            .iter()
            .find(|p| p.uid == uid && (p.name == u || u.parse::<u32>().is_ok()));
        let gid = match g {
            Some(g) if !g.is_empty() => self.gid_of(g)?,
            _ => entry.map(|e| e.gid).unwrap_or(0),
        };
        let mut groups = Vec::new();
        if g.is_none() {
            if let Some(e) = entry {
                for grp in &self.group {
                    if grp.members.iter().any(|m| m == &e.name) && grp.gid != gid {
                        groups.push(grp.gid);
                    }
                }
            }
        }
        Ok(ProcessUser {
            uid,
            gid,
            groups,
            home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
        })
    }
}

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

/// One clause of a symbolic mode: `who op perms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bits of the affected classes (`u` = 0o4700 incl. setuid, …); `a` when none given.
    who: u32,
    op: char,
    /// `rwxXst` letters.
    perms: String,
}

impl Chmod {
    /// Parses `755`, `0644`, or `u=rwx,g+x,o-w,a+X`.
    pub fn parse(s: &str) -> Result<Chmod, PermsError> {
        let bad = || PermsError::BadMode(s.to_string());
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
            let m = u32::from_str_radix(s, 8).map_err(|_| bad())?;
            if m > 0o7777 {
                return Err(bad());
            }
            return Ok(Chmod::Octal(m));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let opi = part.find(['=', '+', '-']).ok_or_else(bad)?;
            let (who_s, rest) = part.split_at(opi);
            let mut who = 0;
            for c in who_s.chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(bad()),
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut chars = rest.chars();
            let op = chars.next().ok_or_else(bad)?;
            let perms: String = chars.collect();
            // `rwxXst` letters, or one of `u`, `g`, `o`: copy that class's bits (`g=u`)
            let copy = matches!(perms.as_str(), "u" | "g" | "o");
            if !copy && perms.chars().any(|c| !"rwxXst".contains(c)) {
                return Err(bad());
            }
            clauses.push(Clause {
                who,
                op,
                perms: perms.to_string(),
            });
        }
        if clauses.is_empty() {
            return Err(bad());
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The new permission bits (lower 12 bits) of a file with `mode` (`is_dir` for `X`).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(clauses) => {
                let mut m = mode & 0o7777;
                for c in clauses {
                    let any_x = m & 0o111 != 0;
                    let mut bits = 0;
                    let class = match c.perms.as_str() {
                        "u" => Some((m >> 6) & 7),
                        "g" => Some((m >> 3) & 7),
                        "o" => Some(m & 7),
                        _ => None,
                    };
                    if let Some(b) = class {
                        bits = (b << 6) | (b << 3) | b;
                    }
                    for p in c.perms.chars().filter(|_| class.is_none()) {
                        bits |= match p {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || any_x => 0o111,
                            'X' => 0,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        };
                    }
                    let bits = bits & c.who;
                    match c.op {
                        '+' => m |= bits,
                        '-' => m &= !bits,
                        _ => {
                            // `=`: clear the classes' rwx (and their special bit), then set
                            let clear = c.who & 0o7777;
                            m = (m & !clear) | bits;
                        }
                    }
                }
                m
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\nappgrp:x:1001:\n";

    fn acc() -> Accounts {
        Accounts {
            passwd: parse_passwd(PASSWD),
            group: parse_group(GROUP),
        }
    }

    #[test]
    fn chown_by_name_and_number() {
        let a = acc();
        assert_eq!(a.chown("app"), Ok((1000, 1000)));
        assert_eq!(a.chown("app:staff"), Ok((1000, 50)));
        assert_eq!(a.chown("42:43"), Ok((42, 43)));
        assert_eq!(a.chown("7"), Ok((7, 7)));
        assert_eq!(a.chown("ghost"), Err(PermsError::NoUser("ghost".into())));
        assert_eq!(a.chown("app:"), Err(PermsError::BadOwner("app:".into())));
    }

    #[test]
    fn process_user_takes_primary_and_member_groups() {
        let a = acc();
        let u = a.process_user("app").expect("app");
        assert_eq!((u.uid, u.gid, u.groups.clone()), (1000, 1001, vec![50]));
        assert_eq!(u.home.as_deref(), Some("/home/app"));
        let u = a.process_user("4242").expect("number");
        assert_eq!((u.uid, u.gid), (4242, 0));
        let u = a.process_user("app:root").expect("explicit");
        assert_eq!((u.uid, u.gid, u.groups), (1000, 0, vec![]));
    }

    #[test]
    fn chmod_octal_and_symbolic() {
        assert_eq!(Chmod::parse("755").expect("ok").apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("4755").expect("ok").apply(0, false), 0o4755);
        let s = Chmod::parse("u=rwx,go=rx").expect("ok");
        assert_eq!(s.apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("go-w").expect("ok").apply(0o666, false), 0o644);
        assert_eq!(Chmod::parse("a+X").expect("ok").apply(0o644, true), 0o755);
        assert_eq!(Chmod::parse("a+X").expect("ok").apply(0o644, false), 0o644);
        assert_eq!(Chmod::parse("+x").expect("ok").apply(0o644, false), 0o755);
        assert!(Chmod::parse("888").is_err());
        assert!(Chmod::parse("u=q").is_err());
        // chmod(1): `g=u` copies the user class's bits (the reference's `COPY --chmod=g=u`)
        assert_eq!(Chmod::parse("g=u").expect("ok").apply(0o740, false), 0o770);
        assert_eq!(Chmod::parse("go=u").expect("ok").apply(0o604, false), 0o666);
        assert_eq!(Chmod::parse("o+g").expect("ok").apply(0o750, false), 0o755);
        assert!(Chmod::parse("g=ux").is_err());
        assert!(Chmod::parse("").is_err());
    }
}
