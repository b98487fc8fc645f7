#!/usr/bin/env python3
"""An independent cosign-style signer and verifier for hoist's tests, written from
sigstore/cosign specs/SIGNATURE_SPEC.md and the sigstore key file format, sharing no code with
hoist. It uses `cryptography` (ECDSA P-256, PKCS#8, scrypt) and `PyNaCl` (secretbox), installed
by scripts/test.sh into target/test-venv, and talks to a registry over plain http.

    cosign_spec.py genkey PREFIX PASSFILE        -> PREFIX.key (encrypted) and PREFIX.pub
    cosign_spec.py sign KEY PASSFILE HOST REPO REF IDENTITY
                                                 -> appends a signature of the manifest REF names
    cosign_spec.py verify PUB HOST REPO REF      -> prints one JSON line per signature; exit 0 when
                                                    one verifies and claims REF's manifest digest
"""

import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
import nacl.secret

PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join([
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")


def b64(b):
    return base64.b64encode(b).decode()


def passphrase(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")[0].rstrip(b"\r")


def derive(pw, salt, n, r, p):
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(pw)


def pem(label, data):
    body = base64.b64encode(data).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def unpem(text):
    lines = text.strip().splitlines()
    label = lines[0][len("-----BEGIN "):-len("-----")]
    return label, base64.b64decode("".join(lines[1:-1]))


def genkey(prefix, passfile):
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    box = nacl.secret.SecretBox(derive(passphrase(passfile), salt, 32768, 8, 1))
    sealed = box.encrypt(der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64(salt)},
           "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
           "ciphertext": b64(sealed)}
    with open(prefix + ".key", "w") as f:
        f.write(pem(LABELS[0], json.dumps(doc).encode()))
    with open(prefix + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def open_key(path, passfile):
    with open(path) as f:
        label, body = unpem(f.read())
    if label not in LABELS:
        sys.exit("not a sigstore private key: " + label)
    doc = json.loads(body)
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
    prm = doc["kdf"]["params"]
    k = derive(passphrase(passfile), base64.b64decode(doc["kdf"]["salt"]), prm["N"], prm["r"], prm["p"])
    der = nacl.secret.SecretBox(k).decrypt(base64.b64decode(doc["ciphertext"]),
                                           base64.b64decode(doc["cipher"]["nonce"]))
    return serialization.load_der_private_key(der, password=None)


def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.read(), dict(r.headers)


def get_manifest(host, repo, ref):
    try:
        body, _ = http("GET", "http://%s/v2/%s/manifests/%s" % (host, repo, ref),
                       headers={"Accept": ACCEPT})
        return body
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def get_blob(host, repo, digest):
    body, _ = http("GET", "http://%s/v2/%s/blobs/%s" % (host, repo, digest))
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        sys.exit("blob %s does not match its digest" % digest)
    return body


def put_blob(host, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, h = http("POST", "http://%s/v2/%s/blobs/uploads/" % (host, repo), data=b"")
    loc = h["Location"]
    if loc.startswith("/"):
        loc = "http://%s%s" % (host, loc)
    sep = "&" if "?" in loc else "?"
    http("PUT", "%s%sdigest=%s" % (loc, sep, digest), data=data,
         headers={"Content-Type": "application/octet-stream"})
    return digest


def sign(keyfile, passfile, host, repo, ref, identity):
    key = open_key(keyfile, passfile)
    manifest = get_manifest(host, repo, ref)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    payload = json.dumps({"critical": {"identity": {"docker-reference": identity},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    tag = digest.replace(":", "-") + ".sig"
    old = get_manifest(host, repo, tag)
    layers = json.loads(old)["layers"] if old else []
    layers.append({"mediaType": PAYLOAD_TYPE, "size": len(payload),
                   "digest": put_blob(host, repo, payload), "annotations": {ANNOTATION: b64(sig)}})
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                    "digest": put_blob(host, repo, config)},
         "layers": layers}
    http("PUT", "http://%s/v2/%s/manifests/%s" % (host, repo, tag), data=json.dumps(m).encode(),
         headers={"Content-Type": OCI_MANIFEST})
    print(digest)


def verify(pubfile, host, repo, ref):
    with open(pubfile, "rb") as f:
        pub = serialization.load_pem_public_key(f.read())
    manifest = get_manifest(host, repo, ref)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    sigm = get_manifest(host, repo, digest.replace(":", "-") + ".sig")
    good = 0
    for layer in (json.loads(sigm)["layers"] if sigm else []):
        if layer["mediaType"] != PAYLOAD_TYPE:
            continue
        payload = get_blob(host, repo, layer["digest"])
        try:
            pub.verify(base64.b64decode(layer["annotations"][ANNOTATION]), payload,
                       ec.ECDSA(hashes.SHA256()))
            valid = True
        except (InvalidSignature, KeyError):
            valid = False
        claims = json.loads(payload)["critical"]
        ok = (valid and claims["type"] == "cosign container image signature"
              and claims["image"]["docker-manifest-digest"] == digest)
        good += ok
        print(json.dumps({"valid": valid, "ok": ok,
                          "identity": claims["identity"]["docker-reference"],
                          "digest": claims["image"]["docker-manifest-digest"]}))
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"genkey": genkey, "sign": sign, "verify": verify}[cmd](*args)
