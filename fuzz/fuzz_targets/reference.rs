//! Fuzzes image reference parsing (`name[:tag][@digest]`): the three entry points, and for every
//! reference accepted, that its printed forms parse back to the same reference. Any panic is a
//! bug; refused input is fine.
#![no_main]

use hoist::image::Reference;
use libfuzzer_sys::fuzz_target;

fn round_trip(r: &Reference) {
    let full = r.to_string();
    let again = Reference::parse_local(&full)
        .unwrap_or_else(|e| panic!("`{full}` printed by a parsed reference does not parse: {e}"));
    assert_eq!(&again, r, "`{full}` does not parse back to itself");
    let fam = r.familiar();
    let back = Reference::parse(&fam)
        .unwrap_or_else(|e| panic!("familiar form `{fam}` of `{full}` does not parse: {e}"));
    assert_eq!(&back, r, "familiar form `{fam}` does not parse back to `{full}`");
    let _ = r.repository();
    let _ = r.without_digest().to_string();
    if let Ok(t) = r.with_tag("fuzz") {
        assert_eq!(t.tag(), Some("fuzz"));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        round_trip(&r);
    }
    if let Ok(r) = Reference::parse_local(s) {
        round_trip(&r);
    }
    if let Ok(c) = Reference::candidates(s) {
        assert!(!c.is_empty() && c.len() <= 2);
        for r in &c {
            round_trip(r);
        }
    }
    if let Some(r) = Reference::parse_local("localhost/x:1").ok() {
        let _ = r.with_tag(s);
    }
});
