//! Byte-faithful JSON edits with the path syntax and the results of tidwall/sjson's `Set`, which
//! Kargo's `json-update` uses: a dot path (`\` escapes the next character, a leading `:` forces an
//! object key, a number indexes an array, `-1` appends); an existing value's bytes are replaced
//! and nothing else moves; a missing key is inserted first in its object (`{"new":1,` ...),
//! missing objects and arrays on the way are built compactly, as sjson builds them.

/// One path part.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    /// The key or index, unescaped.
    name: String,
    /// `:` forced it to be an object key.
    force: bool,
}

impl Part {
    /// The array index it names, when it may name one.
    fn index(&self) -> Option<usize> {
        if self.force || self.name.is_empty() || !self.name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.name.parse().ok()
    }

    fn is_append(&self) -> bool {
        !self.force && self.name == "-1"
    }
}

/// Split a path as sjson does; wildcards and `#` are refused.
fn parse_path(path: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = path;
    loop {
        let mut force = false;
        if let Some(r) = rest.strip_prefix(':') {
            force = true;
            rest = r;
        }
        let mut name = String::new();
        let mut chars = rest.char_indices();
        let mut next = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        name.push(e);
                    }
                }
                '.' => {
                    next = Some(i + 1);
                    break;
                }
                '*' | '?' => return Err("wildcard characters not allowed in path".into()),
                '#' => return Err("array access character not allowed in path".into()),
                c => name.push(c),
            }
        }
        parts.push(Part { name, force });
        match next {
            Some(i) => rest = &rest[i..],
            None => return Ok(parts),
        }
    }
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i] <= b' ' {
        i += 1;
    }
    i
}

/// The end of the JSON value starting at `i` (no validation beyond what finding it needs).
fn value_end(s: &[u8], i: usize) -> Result<usize, String> {
    let bad = || format!("the file is not valid JSON near byte {i}");
    match s.get(i) {
        Some(b'"') => {
            let mut j = i + 1;
            while j < s.len() {
                match s[j] {
                    b'\\' => j += 2,
                    b'"' => return Ok(j + 1),
                    _ => j += 1,
                }
            }
            Err(bad())
        }
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < s.len() {
                match s[j] {
                    b'"' => {
                        j = value_end(s, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(bad())
        }
        Some(_) => {
            let mut j = i;
            while j < s.len() && !matches!(s[j], b',' | b'}' | b']') && s[j] > b' ' {
                j += 1;
            }
            if j == i { Err(bad()) } else { Ok(j) }
        }
        None => Err(bad()),
    }
}

/// The members of the object `s[start..end]` (start at `{`): (key, value start, value end).
fn members(s: &[u8], start: usize) -> Result<Vec<(String, usize, usize)>, String> {
    let mut out = Vec::new();
    let mut i = skip_ws(s, start + 1);
    while i < s.len() && s[i] != b'}' {
        if s[i] == b',' {
            i = skip_ws(s, i + 1);
            continue;
        }
        let key_end = value_end(s, i)?;
        let key: String = serde_json::from_slice(&s[i..key_end])
            .map_err(|e| format!("the file is not valid JSON: {e}"))?;
        i = skip_ws(s, key_end);
        if s.get(i) != Some(&b':') {
            return Err(format!("the file is not valid JSON near byte {i}"));
        }
        let v = skip_ws(s, i + 1);
        let e = value_end(s, v)?;
        out.push((key, v, e));
        i = skip_ws(s, e);
    }
    Ok(out)
}

/// The items of the array at `start` (at `[`): (start, end).
fn items(s: &[u8], start: usize) -> Result<Vec<(usize, usize)>, String> {
    let mut out = Vec::new();
    let mut i = skip_ws(s, start + 1);
    while i < s.len() && s[i] != b']' {
        if s[i] == b',' {
            i = skip_ws(s, i + 1);
            continue;
        }
        let e = value_end(s, i)?;
        out.push((i, e));
        i = skip_ws(s, e);
    }
    Ok(out)
}

/// A string as sjson writes it: bare when it needs no escaping, else as Go's `json.Marshal`
/// writes it (which also escapes `<`, `>`, `&`, U+2028 and U+2029).
pub fn stringify(v: &str) -> String {
    let plain = v
        .bytes()
        .all(|b| (b' '..=0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        return format!("\"{v}\"");
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A new member or item built from the remaining path (sjson's `appendBuild`).
fn build(array: bool, paths: &[Part], raw: &str) -> String {
    let mut buf = String::new();
    if !array {
        buf.push_str(&stringify(&paths[0].name));
        buf.push(':');
    }
    match paths.get(1) {
        Some(next) if next.index().is_some() || next.is_append() => {
            buf.push('[');
            buf.push_str(&"null,".repeat(next.index().unwrap_or(0)));
            buf.push_str(&build(true, &paths[1..], raw));
            buf.push(']');
        }
        Some(_) => {
            buf.push('{');
            buf.push_str(&build(false, &paths[1..], raw));
            buf.push('}');
        }
        None => buf.push_str(raw),
    }
    buf
}

/// Set `paths` to `raw` (JSON text) in the JSON value `doc` (sjson's `appendRawPaths`).
fn set_in(doc: &str, paths: &[Part], raw: &str) -> Result<String, String> {
    let s = doc.as_bytes();
    let start = skip_ws(s, 0);
    let part = &paths[0];
    let found = match s.get(start) {
        Some(b'{') => members(s, start)?
            .into_iter()
            .find(|(k, ..)| *k == part.name)
            .map(|(_, a, b)| (a, b)),
        Some(b'[') => part
            .index()
            .and_then(|n| items(s, start).ok().and_then(|v| v.get(n).copied())),
        _ => None,
    };
    if let Some((a, b)) = found {
        let inner = if paths.len() > 1 {
            set_in(&doc[a..b], &paths[1..], raw)?
        } else {
            raw.to_owned()
        };
        return Ok(format!("{}{inner}{}", &doc[..a], &doc[b..]));
    }
    // Not there: build it into this object or array.
    let (container, prefix, suffix) = match s.get(start) {
        Some(b'{' | b'[') => {
            let end = value_end(s, start)?;
            (&doc[start..end], &doc[..start], &doc[end..])
        }
        _ if part.index().is_some() => ("[]", "", ""),
        _ => ("{}", "", ""),
    };
    let c = container.as_bytes();
    let non_empty = c[1..]
        .iter()
        .find(|b| **b > b' ')
        .is_some_and(|b| *b != b'}' && *b != b']');
    let built = if c[0] == b'{' {
        format!(
            "{{{}{}{}",
            build(false, paths, raw),
            if non_empty { "," } else { "" },
            &container[1..]
        )
    } else if part.is_append() {
        let trimmed = container.trim_end();
        let body = trimmed.strip_suffix(']').unwrap_or(trimmed);
        format!(
            "{body}{}{}]",
            if non_empty { "," } else { "" },
            build(true, paths, raw)
        )
    } else {
        let Some(n) = part.index() else {
            return Err(format!(
                "cannot set array element for non-numeric key '{}'",
                part.name
            ));
        };
        let existing = items(c, 0)?;
        let mut b = String::from("[");
        let raws: Vec<&str> = existing.iter().map(|(a, e)| &container[*a..*e]).collect();
        b.push_str(&raws.join(","));
        if existing.is_empty() {
            b.push_str(&"null,".repeat(n));
        } else {
            b.push_str(&",null".repeat(n.saturating_sub(existing.len())));
            b.push(',');
        }
        b.push_str(&build(true, paths, raw));
        b.push(']');
        b
    };
    Ok(format!("{prefix}{built}{suffix}"))
}

/// Set `path` to the JSON text `raw` in `doc`.
pub fn set(doc: &str, path: &str, raw: &str) -> Result<String, String> {
    let paths = parse_path(path)?;
    // sjson pads an array with nulls up to the index it sets; an index in the billions (a typo,
    // an expression gone wrong) would take gigabytes. Found by the json_update fuzz target.
    if let Some(big) = paths
        .iter()
        .filter_map(Part::index)
        .find(|i| *i > MAX_INDEX)
    {
        return Err(format!(
            "array index {big} is too large: arrays are padded with null up to the index, and promote pads at most {MAX_INDEX} (sjson, which Kargo uses, would allocate them all)"
        ));
    }
    set_in(doc, &paths, raw)
}

/// The largest array index [`set`] accepts.
pub const MAX_INDEX: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_value_is_replaced_and_nothing_else_moves() {
        let doc = "{\n  \"image\": {\"tag\": \"1.0\" , \"repo\": \"x\"},\n  \"n\": [1, 2, 3]\n}\n";
        assert_eq!(
            set(doc, "image.tag", "\"2.0\"").unwrap(),
            "{\n  \"image\": {\"tag\": \"2.0\" , \"repo\": \"x\"},\n  \"n\": [1, 2, 3]\n}\n"
        );
        assert_eq!(
            set(doc, "n.1", "20").unwrap(),
            "{\n  \"image\": {\"tag\": \"1.0\" , \"repo\": \"x\"},\n  \"n\": [1, 20, 3]\n}\n"
        );
    }

    #[test]
    fn missing_keys_and_items_are_built_as_sjson_builds_them() {
        assert_eq!(set("{\"a\":1}", "b", "2").unwrap(), "{\"b\":2,\"a\":1}");
        assert_eq!(set("{}", "a.b", "true").unwrap(), "{\"a\":{\"b\":true}}");
        assert_eq!(
            set("{\"a\":1}", "x.0.y", "1").unwrap(),
            "{\"x\":[{\"y\":1}],\"a\":1}"
        );
        assert_eq!(
            set("{\"n\":[1, 2]}", "n.-1", "3").unwrap(),
            "{\"n\":[1, 2,3]}"
        );
        assert_eq!(
            set("{\"n\":[1]}", "n.3", "4").unwrap(),
            "{\"n\":[1,null,null,4]}"
        );
        assert_eq!(
            set("{\"1\":\"a\"}", ":1", "\"b\"").unwrap(),
            "{\"1\":\"b\"}"
        );
        assert_eq!(set("{\"a.b\":1}", "a\\.b", "2").unwrap(), "{\"a.b\":2}");
        assert!(set("{}", "a.*", "1").is_err());
        assert!(set("{\"a\": [1]}", "a.x", "1").is_err());
    }

    #[test]
    fn strings_are_written_as_go_writes_them() {
        assert_eq!(stringify("1.2.3"), "\"1.2.3\"");
        assert_eq!(
            stringify("a<b>&\"c\""),
            "\"a\\u003cb\\u003e\\u0026\\\"c\\\"\""
        );
        assert_eq!(stringify("é"), "\"é\"");
    }
}

#[cfg(test)]
mod property {
    use super::*;
    use serde_json::{Value, json};

    /// A small deterministic generator (no dependency for a test).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn doc(r: &mut Rng, depth: u32) -> Value {
        match (depth, r.below(6)) {
            (0, _) | (_, 0) => json!(r.below(100)),
            (_, 1) => json!(format!("s{}", r.below(10))),
            (_, 2) => Value::Array((0..r.below(4)).map(|_| doc(r, depth - 1)).collect()),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..r.below(4) {
                    m.insert(format!("k{}", r.below(5)), doc(r, depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    /// Existing paths of scalars in `v`.
    fn scalar_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    scalar_paths(x, &format!("{prefix}{k}."), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    scalar_paths(x, &format!("{prefix}{i}."), out);
                }
            }
            _ => out.push(prefix.trim_end_matches('.').to_owned()),
        }
    }

    fn pointer(path: &str) -> String {
        format!("/{}", path.replace('.', "/"))
    }

    #[test]
    fn replacing_a_value_changes_that_value_and_no_byte_around_it() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let v = doc(&mut r, 4);
            // Pretty and compact layouts, both kept byte for byte outside the value.
            let text = if r.below(2) == 0 {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                serde_json::to_string(&v).unwrap()
            };
            let mut paths = Vec::new();
            scalar_paths(&v, "", &mut paths);
            paths.retain(|p| !p.is_empty());
            let Some(path) = paths.get(r.below(paths.len() as u64) as usize) else {
                continue;
            };
            let new = json!(format!("new-{}", r.below(1000)));
            let out = set(&text, path, &stringify(new.as_str().unwrap())).unwrap();
            let mut want = v.clone();
            *want.pointer_mut(&pointer(path)).unwrap() = new.clone();
            let got: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(got, want, "{text}\n{path}");
            // Only the value's bytes changed.
            let old_raw = serde_json::to_string(v.pointer(&pointer(path)).unwrap()).unwrap();
            assert_eq!(
                out.len() + old_raw.len(),
                text.len() + stringify(new.as_str().unwrap()).len()
            );
        }
    }

    #[test]
    fn a_new_key_lands_where_the_path_says() {
        let mut r = Rng(42);
        for _ in 0..1000 {
            let v = doc(&mut r, 3);
            if !v.is_object() {
                continue;
            }
            let text = serde_json::to_string_pretty(&v).unwrap();
            let key = format!("new{}", r.below(1000));
            if v.get(&key).is_some() {
                continue;
            }
            let out = set(&text, &format!("{key}.inner"), "true").unwrap();
            let got: Value = serde_json::from_str(&out).unwrap();
            let mut want = v.clone();
            want[&key] = json!({"inner": true});
            assert_eq!(got, want, "{text}");
        }
    }
}
