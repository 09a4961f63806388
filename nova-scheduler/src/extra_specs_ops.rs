//! Nova's extra-spec operator grammar (`extra_specs_ops.match`): `=`
//! (numeric ≥), `==`, `!=`, `>=`, `<=` (numeric), `s==`, `s!=`, `s<`,
//! `s<=`, `s>`, `s>=` (string), `<in>` (substring), `<all-in>` (every
//! word is a substring), `<or>` (one of); no operator means string
//! equality with the whole requirement.

fn num(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// Whether `value` meets requirement `req`.
pub fn matches(value: &str, req: &str) -> bool {
    let mut words = req.split_whitespace();
    let Some(op) = words.next() else {
        return value == req;
    };
    let rest: Vec<&str> = words.collect();
    let numeric = |f: fn(f64, f64) -> bool| match (num(value), rest.first().and_then(|w| num(w))) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    };
    let string = |f: fn(&str, &str) -> bool| rest.first().is_some_and(|w| f(value, w));
    match op {
        "=" | ">=" => numeric(|a, b| a >= b),
        "==" => numeric(|a, b| a == b),
        "!=" => numeric(|a, b| a != b),
        "<=" => numeric(|a, b| a <= b),
        "s==" => string(|a, b| a == b),
        "s!=" => string(|a, b| a != b),
        "s<" => string(|a, b| a < b),
        "s<=" => string(|a, b| a <= b),
        "s>" => string(|a, b| a > b),
        "s>=" => string(|a, b| a >= b),
        "<in>" => rest.first().is_some_and(|w| value.contains(w)),
        "<all-in>" => !rest.is_empty() && rest.iter().all(|w| value.contains(w)),
        "<or>" => {
            // <or> v1 <or> v2 ...: the values are the even positions.
            rest.iter().step_by(2).any(|w| *w == value)
        }
        _ => value == req,
    }
}

/// [`matches`] for a numeric value when `req` is one numeric comparison
/// (`= N`, `== N`, `!= N`, `>= N`, `<= N`); `None` when the requirement
/// needs the value's string form.
pub fn matches_number(value: f64, req: &str) -> Option<bool> {
    let mut words = req.split_whitespace();
    let (Some(op), Some(arg), None) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    let b = arg.parse::<f64>().ok()?;
    Some(match op {
        "=" | ">=" => value >= b,
        "==" => value == b,
        "!=" => value != b,
        "<=" => value <= b,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn operators_follow_nova() {
        assert!(matches("8002000", ">= 7002000"));
        assert!(!matches("6002000", ">= 7002000"));
        assert!(matches("4", "= 2"), "= is numeric >=");
        assert!(!matches("1", "= 2"));
        assert!(matches("2.0", "== 2"));
        assert!(matches("QEMU", "QEMU"));
        assert!(!matches("qemu", "QEMU"));
        assert!(matches("QEMU", "s== QEMU"));
        assert!(matches("b", "s> a"));
        assert!(matches("avx avx2 sse", "<in> avx2"));
        assert!(matches("avx avx2 sse", "<all-in> avx sse"));
        assert!(!matches("avx sse", "<all-in> avx avx2"));
        assert!(matches("kvm", "<or> xen <or> kvm"));
        assert!(!matches("lxc", "<or> xen <or> kvm"));
        assert!(!matches("abc", ">= 1"), "not a number");
        assert!(matches("", ""));
    }
}
