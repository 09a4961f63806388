//! nova's `instance.name`: `[DEFAULT] instance_name_template` (default
//! `instance-%08x`) applied, Python `%` style, to the instance's id, or to
//! its fields for templates such as `instance-%(uuid)s`.

/// nova's default template.
pub const DEFAULT_TEMPLATE: &str = "instance-%08x";

/// The template of `conf` (`[DEFAULT] instance_name_template`).
pub fn template(conf: &crate::Conf) -> String {
    conf.str_or("DEFAULT", "instance_name_template", DEFAULT_TEMPLATE)
}

/// `template % id` (or `template % {"id": id, "uuid": uuid}`), as nova's
/// `Instance.name`; a template that cannot be applied gives nova's
/// fallback for an unknown key, the uuid-based `instance-<uuid>`.
pub fn instance_name(template: &str, id: i64, uuid: &str) -> String {
    format_template(template, id, uuid).unwrap_or_else(|| format!("instance-{uuid}"))
}

fn format_template(t: &str, id: i64, uuid: &str) -> Option<String> {
    let mut out = String::new();
    let mut it = t.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut key = None;
        if it.peek() == Some(&'(') {
            it.next();
            let k: String = it.by_ref().take_while(|&c| c != ')').collect();
            key = Some(k);
        }
        let mut flags = String::new();
        while let Some(&c) = it.peek() {
            if c.is_ascii_digit() || c == '-' || c == '.' {
                flags.push(c);
                it.next();
            } else {
                break;
            }
        }
        let conv = it.next()?;
        if conv == '%' {
            out.push('%');
            continue;
        }
        let zero = flags.starts_with('0');
        let left = flags.starts_with('-');
        let width: usize = flags
            .trim_start_matches(['0', '-'])
            .split('.')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(0);
        let text = match (key.as_deref(), conv) {
            (None | Some("id"), 'd' | 'i' | 'u') => id.to_string(),
            (None | Some("id"), 'x') => format!("{id:x}"),
            (None | Some("id"), 'X') => format!("{id:X}"),
            (None | Some("id"), 'o') => format!("{id:o}"),
            (None | Some("id"), 's') => id.to_string(),
            (Some("uuid"), 's') => uuid.to_owned(),
            _ => return None,
        };
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(if zero { '0' } else { ' ' }, pad));
            out.push_str(&text);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_percent_formats_as_nova() {
        assert_eq!(instance_name(DEFAULT_TEMPLATE, 1, "u"), "instance-00000001");
        assert_eq!(
            instance_name("instance-%08x", 255, "u"),
            "instance-000000ff"
        );
        assert_eq!(instance_name("vm-%d", 42, "u"), "vm-42");
        assert_eq!(instance_name("vm-%(uuid)s", 42, "ab-cd"), "vm-ab-cd");
        assert_eq!(instance_name("vm-%(id)05d", 42, "u"), "vm-00042");
        assert_eq!(instance_name("vm-%(host)s", 42, "ab"), "instance-ab");
    }
}
