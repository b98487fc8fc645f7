//! Flattens an image of an OCI image layout (a `buildah push … oci:DIR` export, or hoist's store,
//! which is an OCI layout whose names are `org.opencontainers.image.ref.name` annotations) into
//! one listing of its final file system: layers applied in order with OCI whiteouts
//! (`.wh.NAME` removes `NAME` of the lower layers, `.wh..wh..opq` empties a directory of what the
//! lower layers put there), hard links kept as groups. Times are not part of the listing.

use flate2::read::GzDecoder;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// One object of the flattened file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub sha256: Option<String>,
    pub link: Option<String>,
    pub device: Option<(u32, u32)>,
    pub xattrs: BTreeMap<String, String>,
    /// Same number = same file (hard links).
    inode: u64,
}

/// A flattened image: its file system and its config JSON.
pub struct Flat {
    pub files: BTreeMap<String, Node>,
    pub config: Value,
}

impl Flat {
    /// One line per path: `path kind mode uid:gid [size sha256] [-> target] [hardlinks=a,b]
    /// [xattr k=v]`, sorted by path.
    pub fn listing(&self) -> Vec<String> {
        let mut groups: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for (p, n) in &self.files {
            if n.kind == "file" {
                groups.entry(n.inode).or_default().push(p);
            }
        }
        self.files
            .iter()
            .map(|(p, n)| {
                let mut line = format!("/{p} {} {:04o} {}:{}", n.kind, n.mode, n.uid, n.gid);
                if n.kind == "file" {
                    let sha = n.sha256.as_deref().unwrap_or("");
                    line.push_str(&format!(" {} {}", n.size, &sha[..sha.len().min(16)]));
                    let group = &groups[&n.inode];
                    if group.len() > 1 {
                        line.push_str(&format!(" hardlinks={}", group.join(",")));
                    }
                }
                if let Some(t) = &n.link {
                    line.push_str(&format!(" -> {t}"));
                }
                if let Some((ma, mi)) = n.device {
                    line.push_str(&format!(" dev={ma},{mi}"));
                }
                for (k, v) in &n.xattrs {
                    line.push_str(&format!(" xattr:{k}={v}"));
                }
                line
            })
            .collect()
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    layout.join("blobs").join(alg).join(hex)
}

/// The manifest descriptor of `name` in `layout/index.json`: the one whose ref-name annotation
/// is `name` (also tried as `localhost/NAME`, with `:latest`), or the only one when `name` is
/// `None`.
fn find_manifest(layout: &Path, name: Option<&str>) -> Result<Value, String> {
    let index = read_json(&layout.join("index.json"))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let Some(name) = name else {
        return match manifests.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(format!(
                "{}: expected one manifest, found {}",
                layout.display(),
                manifests.len()
            )),
        };
    };
    let mut wanted = vec![name.to_string()];
    let bare = name.strip_prefix("localhost/").unwrap_or(name);
    for n in [
        bare.to_string(),
        format!("localhost/{bare}"),
        format!("docker.io/library/{bare}"),
    ] {
        wanted.push(n.clone());
        if !n.rsplit('/').next().unwrap_or("").contains(':') {
            wanted.push(format!("{n}:latest"));
        }
    }
    manifests
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|r| wanted.iter().any(|w| w == r))
        })
        .cloned()
        .ok_or_else(|| {
            format!(
                "{}: no image named `{name}` in index.json",
                layout.display()
            )
        })
}

/// Flattens image `name` (or the only image) of the OCI layout at `layout`.
pub fn flatten(layout: &Path, name: Option<&str>) -> Result<Flat, String> {
    let desc = find_manifest(layout, name)?;
    let mut manifest = read_json(&blob(layout, desc["digest"].as_str().unwrap_or("")))?;
    if manifest["manifests"].is_array() {
        // an image index: take the first (only) platform manifest
        let d = manifest["manifests"][0]["digest"]
            .as_str()
            .unwrap_or("")
            .to_string();
        manifest = read_json(&blob(layout, &d))?;
    }
    let config = read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap_or(""),
    ))?;
    let mut state = State::default();
    for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let path = blob(layout, layer["digest"].as_str().unwrap_or(""));
        state.apply(&path)?;
    }
    Ok(Flat {
        files: state.files,
        config,
    })
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, Node>,
    next_inode: u64,
}

enum Item {
    Node(String, Node, Option<String>),
    Whiteout(String),
    Opaque(String),
}

fn clean(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl State {
    fn remove_below(&mut self, dir: &str, including: bool) {
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.files.remove(&k);
        }
        if including {
            self.files.remove(dir);
        }
    }

    fn apply(&mut self, path: &Path) -> Result<(), String> {
        let mut f =
            BufReader::new(File::open(path).map_err(|e| format!("{}: {e}", path.display()))?);
        let mut magic = [0u8; 4];
        let n = f.read(&mut magic).map_err(|e| e.to_string())?;
        let head = std::io::Cursor::new(magic[..n].to_vec()).chain(f);
        let reader: Box<dyn Read> = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            Box::new(GzDecoder::new(head))
        } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(format!(
                "{}: zstd layers are not supported by the flattener",
                path.display()
            ));
        } else {
            Box::new(head)
        };
        let mut archive = tar::Archive::new(reader);
        let mut items = Vec::new();
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            let name = clean(&entry.path().map_err(|e| e.to_string())?.to_string_lossy());
            if name.is_empty() {
                continue;
            }
            let (dir, base) = match name.rsplit_once('/') {
                Some((d, b)) => (d.to_string(), b.to_string()),
                None => (String::new(), name.clone()),
            };
            if base == ".wh..wh..opq" {
                items.push(Item::Opaque(dir));
                continue;
            }
            if let Some(gone) = base.strip_prefix(".wh.") {
                let p = if dir.is_empty() {
                    gone.to_string()
                } else {
                    format!("{dir}/{gone}")
                };
                items.push(Item::Whiteout(p));
                continue;
            }
            let h = entry.header().clone();
            let et = h.entry_type();
            let mut xattrs = BTreeMap::new();
            if let Ok(Some(exts)) = entry.pax_extensions() {
                for ext in exts.flatten() {
                    if let Some(k) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                        let v = ext.value_bytes();
                        let shown = match std::str::from_utf8(v) {
                            Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
                            _ => format!("0x{}", hex::encode(v)),
                        };
                        xattrs.insert(k.to_string(), shown);
                    }
                }
            }
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().into_owned());
            let kind = match et {
                tar::EntryType::Directory => "dir",
                tar::EntryType::Symlink => "symlink",
                tar::EntryType::Link => "hardlink",
                tar::EntryType::Char => "chardev",
                tar::EntryType::Block => "blockdev",
                tar::EntryType::Fifo => "fifo",
                _ => "file",
            };
            let mut sha = None;
            let mut size = 0;
            if kind == "file" {
                let mut h2 = Sha256::new();
                let mut buf = [0u8; 65536];
                loop {
                    let n = entry.read(&mut buf).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    h2.update(&buf[..n]);
                }
                sha = Some(hex::encode(h2.finalize()));
            }
            let device = if kind == "chardev" || kind == "blockdev" {
                Some((
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                ))
            } else {
                None
            };
            let node = Node {
                kind,
                mode: h.mode().unwrap_or(0) & 0o7777,
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
                size,
                sha256: sha,
                link: if kind == "symlink" {
                    link.clone()
                } else {
                    None
                },
                device,
                xattrs,
                inode: 0,
            };
            let hard = if kind == "hardlink" {
                link.map(|l| clean(&l))
            } else {
                None
            };
            items.push(Item::Node(name, node, hard));
        }
        // whiteouts and opaque markers apply to the lower layers only
        for item in &items {
            match item {
                Item::Opaque(d) => self.remove_below(d, false),
                Item::Whiteout(p) => self.remove_below(p, true),
                Item::Node(..) => {}
            }
        }
        for item in items {
            let Item::Node(name, mut node, hard) = item else {
                continue;
            };
            if let Some(target) = hard {
                match self.files.get(&target) {
                    Some(t) => node = t.clone(),
                    None => {
                        return Err(format!(
                            "{}: hard link `{name}` to missing `{target}`",
                            path.display()
                        ))
                    }
                }
            } else {
                self.next_inode += 1;
                node.inode = self.next_inode;
            }
            if node.kind != "dir" && self.files.get(&name).is_some_and(|n| n.kind == "dir") {
                self.remove_below(&name, false);
            }
            self.files.insert(name, node);
        }
        Ok(())
    }
}
