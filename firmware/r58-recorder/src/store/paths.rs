//! Checks for path components that come from requests.

/// A single, plain path component: no separators, no `..`, no hidden names.
pub fn safe_component(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not a valid name"))
    }
}

#[cfg(test)]
mod tests {
    use super::safe_component;

    #[test]
    fn rejects_traversal_and_separators() {
        for bad in ["", "..", "../x", "a/b", ".hidden", "a\\b", "a b"] {
            assert!(safe_component(bad).is_err(), "{bad}");
        }
        for good in ["20261128T101500Z", "cam-1", "x.ts"] {
            assert!(safe_component(good).is_ok(), "{good}");
        }
    }
}
