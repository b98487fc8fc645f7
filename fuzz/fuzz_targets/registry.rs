//! Fuzzes what hoist parses of a registry's answers and of the user's registry settings: the
//! `WWW-Authenticate` challenge parser, manifest/index classification and the platform choice
//! over an index (through oci-spec's types), `registries.conf` (its checks and the endpoint
//! rewriting for a few references), platforms and the push format conversion. Any panic, hang
//! or runaway allocation is a bug; errors are fine.
#![no_main]

use hoist::image::{Platform, Reference};
use hoist::registry::auth::parse_challenge;
use hoist::registry::push::{convert, Format};
use hoist::registry::{choose_platform, Conf, ManifestKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_challenge(&text);
    let _ = ManifestKind::classify(&text, data);
    let _ = ManifestKind::classify("", data);
    let _ = choose_platform("fuzz", data, &Platform::host());
    let _ = Platform::parse(&text);
    let _ = convert(data, Format::Docker);
    let _ = convert(data, Format::Oci);
    if let Ok(conf) = Conf::parse(&text) {
        for r in ["busybox", "quay.io/a/b:1", "localhost:5000/x@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"] {
            let r = Reference::parse(r).expect("valid reference");
            let _ = conf.endpoints(&r, true);
        }
        let _ = conf.host_insecure(&text);
    }
});
