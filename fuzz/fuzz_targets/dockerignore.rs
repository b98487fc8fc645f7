//! Fuzzes the `.dockerignore` matcher: the input is an ignore file, a NUL byte, then paths (one a
//! line). The patterns are compiled (`Matcher::parse`, plus each line alone as a `GlobPattern`),
//! and every path is asked every question the context walk asks. Any panic or hang is a bug;
//! refused patterns are fine. Checked properties: a path the matcher excludes has a deciding
//! pattern (`excluded_by`), and the two agree.
#![no_main]

use hoist::ignore::{self, GlobPattern, Matcher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (patterns, paths) = text.split_once('\0').unwrap_or((&text, ""));
    for (_, line) in ignore::read_lines(patterns) {
        if let Ok(g) = GlobPattern::new(&line) {
            for p in paths.lines() {
                let _ = g.matches(p);
            }
        }
        let _ = ignore::has_wildcards(&line);
        let _ = ignore::unescape(&line);
        let _ = ignore::clean(&line);
    }
    let Ok(m) = Matcher::parse(patterns) else {
        return;
    };
    let _ = (m.has_exceptions(), m.is_empty());
    for pat in m.patterns() {
        let _ = pat.match_kind();
    }
    for p in paths.lines() {
        let p = ignore::clean(p);
        let excluded = m.is_excluded(&p);
        assert_eq!(
            excluded,
            m.excluded_by(&p).is_some(),
            "is_excluded and excluded_by disagree on {p:?}"
        );
        let _ = m.verdict(&p);
        for pat in m.patterns() {
            let _ = pat.matches(&p);
        }
        let _ = m.may_match_below(&p);
        let _ = m.may_include_below(&p);
    }
});
