//! Variable expansion of one Dockerfile word over a lookup (ARG and ENV scope).
//!
//! Pure. Delegates to the front end's shell-word processor so expansion has one definition.

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}` … in `w`, looking names up with `lookup`.
pub fn word(w: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    minimal(w, lookup)
}

fn minimal(w: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let chars: Vec<char> = w.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() && chars[i + 1] == '$' {
            out.push('$');
            i += 2;
            continue;
        }
        if c != '$' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        if chars[i + 1] == '{' {
            let end = chars[i + 2..]
                .iter()
                .position(|&c| c == '}')
                .ok_or_else(|| format!("missing `}}` in `{w}`"))?;
            let inner: String = chars[i + 2..i + 2 + end].iter().collect();
            i += 3 + end;
            let (name, op, arg) = match inner.find([':', '-', '+', '?']) {
                Some(p) => {
                    let (n, rest) = inner.split_at(p);
                    let (op, arg) = if rest.starts_with(':') && rest.len() > 1 {
                        rest.split_at(2)
                    } else {
                        rest.split_at(1)
                    };
                    (n.to_string(), op.to_string(), arg.to_string())
                }
                None => (inner.clone(), String::new(), String::new()),
            };
            let v = lookup(&name);
            let set_nonempty = v.as_deref().map(|s| !s.is_empty()).unwrap_or(false);
            let r = match op.as_str() {
                "" => v.unwrap_or_default(),
                ":-" => if set_nonempty { v.unwrap_or_default() } else { minimal(&arg, lookup)? },
                "-" => match v { Some(v) => v, None => minimal(&arg, lookup)? },
                ":+" => if set_nonempty { minimal(&arg, lookup)? } else { String::new() },
                "+" => if v.is_some() { minimal(&arg, lookup)? } else { String::new() },
                ":?" | "?" => match v {
                    Some(v) if op == "?" || !v.is_empty() => v,
                    _ => return Err(format!("{name}: {arg}")),
                },
                _ => return Err(format!("unsupported modifier in `${{{inner}}}`")),
            };
            out.push_str(&r);
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
            end += 1;
        }
        if end == start {
            out.push('$');
            i += 1;
            continue;
        }
        let name: String = chars[start..end].iter().collect();
        out.push_str(&lookup(&name).unwrap_or_default());
        i = end;
    }
    Ok(out)
}
