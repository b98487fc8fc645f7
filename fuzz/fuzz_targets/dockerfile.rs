//! Fuzzes the Dockerfile front end: the raw parser and its BuildKit dump, the typed parser with
//! error rendering, and the word expander (single word and word splitting) over every word the
//! typed parser hands out plus the raw input itself. Any panic, hang or runaway allocation is a
//! bug; errors are fine.
#![no_main]

use hoist::dockerfile::{self, lines, shell, Instruction};
use libfuzzer_sys::fuzz_target;

fn lookup(name: &str) -> Option<String> {
    match name.len() % 3 {
        0 => None,
        1 => Some(String::new()),
        _ => Some(format!("{name} {name}*/?")),
    }
}

fn expand_all(word: &str) {
    let _ = shell::expand(word, &lookup);
    let _ = shell::expand_words(word, &lookup);
    let _ = shell::Lexer::new('`').expand_with_matches(word, &lookup);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(raw) = lines::parse(&text, "Dockerfile") {
        let _ = raw.dump();
    }
    match dockerfile::parse(&text, "Dockerfile") {
        Ok(df) => {
            for a in &df.meta_args {
                if let Some(d) = &a.default {
                    expand_all(d);
                }
            }
            for stage in &df.stages {
                expand_all(&stage.from.image.value);
                for ins in &stage.instructions {
                    match &ins.value {
                        Instruction::Env(kvs) | Instruction::Label(kvs) => {
                            for kv in kvs {
                                expand_all(&kv.key);
                                expand_all(&kv.value);
                            }
                        }
                        Instruction::Copy(c) => {
                            for s in &c.sources {
                                expand_all(&s.value);
                            }
                            expand_all(&c.dest.value);
                        }
                        Instruction::Add(a) => {
                            for s in &a.sources {
                                expand_all(&s.value);
                            }
                        }
                        Instruction::Workdir(w) | Instruction::User(w) => expand_all(w),
                        _ => {}
                    }
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if text.len() < 4096 {
        expand_all(&text);
    }
});
