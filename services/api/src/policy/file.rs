//! Policy files: JSON (`{"rule": "check", …}`) or the YAML oslo's
//! generators write — a flat mapping of rule names to check strings,
//! plain or quoted, with comments and blank lines.

/// The (name, check string) pairs of a policy file.
pub(super) fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON: {e}"))?;
        return v
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                other => Err(format!("rule {k}: {other} is not a check string")),
            })
            .collect();
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l == "---" || l == "{}" {
            continue;
        }
        let err = |m: &str| format!("line {}: {m}", n + 1);
        if line.starts_with(' ') || line.starts_with('\t') {
            return Err(err(
                "a policy file is a flat mapping of rule names to check strings",
            ));
        }
        let (key, rest) = scalar(l).ok_or_else(|| err("a rule name is expected"))?;
        let rest = rest
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| err("':' is expected after the rule name"))?;
        let rest = rest.trim();
        let value = if rest.is_empty() {
            String::new()
        } else {
            let (v, tail) = scalar(rest).ok_or_else(|| err("a check string is expected"))?;
            let tail = tail.trim();
            if !tail.is_empty() && !tail.starts_with('#') {
                return Err(err("unexpected text after the check string"));
            }
            v
        };
        out.push((key, value));
    }
    Ok(out)
}

/// A YAML scalar at the start of `s`: `'single'` (`''` escapes a quote),
/// `"double"` (backslash escapes) or plain (up to `: ` for keys, ` #` for
/// values); the rest of `s`.
fn scalar(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    match chars.next()? {
        (_, '\'') => {
            let mut out = String::new();
            let b = s.as_bytes();
            let mut i = 1;
            while i < s.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    return Some((out, &s[i + 1..]));
                }
                let c = s[i..].chars().next()?;
                out.push(c);
                i += c.len_utf8();
            }
            None
        }
        (_, '"') => {
            let mut out = String::new();
            let mut esc = false;
            for (i, c) in chars {
                match (esc, c) {
                    (true, 'n') => out.push('\n'),
                    (true, 't') => out.push('\t'),
                    (true, c) => out.push(c),
                    (false, '\\') => {
                        esc = true;
                        continue;
                    }
                    (false, '"') => return Some((out, &s[i + 1..])),
                    (false, c) => out.push(c),
                }
                esc = false;
            }
            None
        }
        _ => {
            // A plain key ends at ": " (or a final ':'); a plain value at " #".
            let end = s
                .find(": ")
                .or_else(|| s.ends_with(':').then(|| s.len() - 1))
                .or_else(|| s.find(" #"))
                .unwrap_or(s.len());
            Some((s[..end].trim().to_owned(), &s[end..]))
        }
    }
}
