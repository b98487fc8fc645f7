#!/usr/bin/env python3
"""Regenerates the seed corpora in fuzz/corpus/ from the repository's fixtures (see README.md).

dockerignore: one seed per distinct pattern set of fixtures/dockerignore/cases.json (patterns,
              a NUL byte, then every path the corpus asks about that set), plus the balena
              ignore files in fixtures/dockerignore/fixtures/balena/.
reference:    the reference strings of the unit tests in src/image/reference.rs, plus the
              inputs the target found (copied from artifacts/, never removed).
layer_apply:  small hand-made tars (this script), each one case apply_tar must handle or refuse.
Deterministic: the same fixtures give the same files (names are sha1 of content, as libFuzzer's).
"""
import hashlib, io, json, os, re, shutil, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def put(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def reset(target):
    shutil.rmtree(os.path.join(HERE, "corpus", target), ignore_errors=True)


def dockerignore():
    reset("dockerignore")
    cases = json.load(open(os.path.join(REPO, "fixtures/dockerignore/cases.json")))
    sets = {}
    for c in cases:
        sets.setdefault(tuple(c["patterns"]), []).append(c["path"])
    for pats, paths in sets.items():
        put("dockerignore", ("\n".join(pats) + "\0" + "\n".join(paths)).encode())
    bal = os.path.join(REPO, "fixtures/dockerignore/fixtures/balena")
    for name in sorted(os.listdir(bal)):
        put("dockerignore", open(os.path.join(bal, name), "rb").read() + b"\0a\nb/c\nnode_modules/x\n")


def reference():
    # not reset: inputs the target found (copied from artifacts/) stay beside the generated ones
    src = open(os.path.join(REPO, "src/image/reference.rs")).read()
    tests = src[src.index("#[cfg(test)]"):]
    d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for s in sorted(set(re.findall(r'"((?:[^"\\]|\\.)*)"', tests))):
        s = s.replace("{D}", d)
        if "{" in s or " " in s and not s.startswith("bad"):
            continue
        put("reference", s.encode())


def tar_of(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            data = None
            if kind == "file":
                data = extra.encode()
                info.size = len(data)
                info.mode = 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = extra
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = extra
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = extra
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue().rstrip(b"\0")
    # keep the two zero blocks that end an archive, drop the record padding after them
    return raw + b"\0" * (-len(raw) % 512 + 1024)


def layer_apply():
    reset("layer_apply")
    cases = [
        [("etc", "dir", None), ("etc/hostname", "file", "box\n")],
        [("bin", "symlink", "usr/bin"), ("usr/bin", "dir", None), ("usr/bin/sh", "file", "#!\n")],
        [("a", "file", "x"), ("b", "hardlink", "a")],
        [("../escape", "file", "x")],
        [("/abs", "file", "x")],
        [("up", "symlink", "../../"), ("up/sentinel", "file", "owned")],
        [("up", "symlink", "../../sentinel"), ("up", "file", "replaced")],
        [("abs", "symlink", "/tmp"), ("abs/x", "file", "x")],
        [("h", "hardlink", "../../sentinel")],
        [("d", "dir", None), ("d/.wh.x", "file", ""), ("d/.wh..wh..opq", "file", "")],
        [(".wh...", "file", "")],
        [("dev", "dir", None), ("dev/null", "chr", (1, 3)), ("dev/p", "fifo", None)],
        [("x" * 200 + "/" + "y" * 120, "file", "long")],
        [("a/b/c/d/e", "file", "deep")],
        [("./", "dir", None), ("./f", "file", "dot")],
        [("loop", "symlink", "loop"), ("loop/x", "file", "x")],
    ]
    for c in cases:
        put("layer_apply", tar_of(c))
    put("layer_apply", tar_of(cases[0], tarfile.GNU_FORMAT))
    put("layer_apply", tar_of(cases[0], tarfile.USTAR_FORMAT))


if __name__ == "__main__":
    dockerignore()
    reference()
    layer_apply()
