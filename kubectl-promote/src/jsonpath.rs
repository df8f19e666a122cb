//! kubectl's `-o jsonpath=TEMPLATE`: the template language of `k8s.io/client-go/util/jsonpath`
//! (text outside `{}`, `{"\n"}` literals, `{range …}…{end}`, kubectl's field syntax with `\.`
//! escapes) and its way of printing results, over the JSON that `-o json` prints.
//!
//! The queries themselves run on `jsonpath-rust` (RFC 9535): each kubectl path (`.items[*]`,
//! `['a.b']`, `..name`, `[?(@.type=="Ready")]`) is translated to the RFC form rather than
//! evaluated by hand. What kubectl adds on top, and what is printed how, is kubectl's:
//! results of one `{}` are joined by a space, strings print raw, maps and lists as compact JSON
//! with sorted keys (Go's `json.Marshal`), numbers and booleans as Go's `fmt.Print` does, and a
//! missing key prints nothing (kubectl's `--allow-missing-template-keys=true` default).

use jsonpath_rust::JsonPath;
use serde_json::Value;

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// Printed as is.
    Text(String),
    /// One `{…}`: a chain applied to the current value; its results are printed.
    Action(Vec<Link>),
    /// `{range CHAIN}` … `{end}`: the body once per result of the chain.
    Range(Vec<Link>, Vec<Node>),
}

#[derive(Clone, Debug, PartialEq)]
enum Link {
    /// An RFC 9535 query relative to each current value (`$…`).
    Query(String),
    /// A literal (`"text"`, a number, `true`): replaces the current values.
    Literal(Value),
}

impl Template {
    /// Parse kubectl's template text (what follows `jsonpath=`).
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut stack: Vec<(Vec<Link>, Vec<Node>)> = Vec::new();
        let mut nodes = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_owned()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_owned()));
            }
            let (action, after) = split_action(&rest[open + 1..])?;
            rest = after;
            match parse_action(action)? {
                Parsed::Range(chain) => stack.push((chain, std::mem::take(&mut nodes))),
                Parsed::End => {
                    let Some((chain, outer)) = stack.pop() else {
                        return Err("{end} without a {range} before it".into());
                    };
                    let body = std::mem::replace(&mut nodes, outer);
                    nodes.push(Node::Range(chain, body));
                }
                Parsed::Chain(chain) => nodes.push(Node::Action(chain)),
            }
        }
        // kubectl runs an unclosed range to the end of the template.
        while let Some((chain, outer)) = stack.pop() {
            let body = std::mem::replace(&mut nodes, outer);
            nodes.push(Node::Range(chain, body));
        }
        Ok(Self {
            source: source.to_owned(),
            nodes,
        })
    }

    /// The template as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text the template prints for `data`.
    pub fn render(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

fn render_nodes(nodes: &[Node], data: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(chain) => {
                let results = eval(chain, data)?;
                for (i, r) in results.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    print_value(r, out);
                }
            }
            Node::Range(chain, body) => {
                for item in eval(chain, data)? {
                    render_nodes(body, &item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval(chain: &[Link], data: &Value) -> Result<Vec<Value>, String> {
    let mut current = vec![data.clone()];
    for link in chain {
        current = match link {
            Link::Literal(v) => vec![v.clone()],
            Link::Query(q) => {
                let mut next = Vec::new();
                for v in &current {
                    let found = v.query(q).map_err(|e| format!("{q}: {e}"))?;
                    next.extend(found.into_iter().cloned());
                }
                next
            }
        };
    }
    Ok(current)
}

/// One result as kubectl prints it.
fn print_value(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_print_number(n)),
        Value::Array(_) | Value::Object(_) => go_json(v, out),
    }
}

/// A number as Go's `fmt.Print` shows what kubectl decoded (int64 for integers, else float64
/// printed with `%g`'s shortest form: `2.5`, `1e+06`).
fn go_print_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    go_float(f, 6, false)
}

/// Go's shortest `%g` (`eprec` 6 for `fmt.Print`) or `json.Marshal`'s float form (`json`: plain
/// unless the exponent is below -6 or at least 21, exponent without padding).
fn go_float(f: f64, eprec: i32, json: bool) -> String {
    if f == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, like Go's.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let use_exp = if json {
        !(-7 < exp && exp < 21)
    } else {
        exp < -4 || exp >= eprec
    };
    if !use_exp {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    let digits = exp.unsigned_abs();
    if json {
        format!("{mantissa}e{sign}{digits}")
    } else {
        format!("{mantissa}e{sign}{digits:02}")
    }
}

/// Compact JSON as Go's `json.Marshal` writes a decoded object: keys sorted, `<`, `>`, `&`,
/// U+2028 and U+2029 escaped.
fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string());
            } else {
                out.push_str(&go_float(n.as_f64().unwrap_or(0.0), 21, true));
            }
        }
        Value::String(s) => go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(&map[k], out);
            }
            out.push('}');
        }
    }
}

fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The text of one `{…}` and what follows its `}`. A `}` inside a quoted string or a filter
/// does not close it.
fn split_action(s: &str) -> Result<(&str, &str), String> {
    let mut quote: Option<char> = None;
    let mut prev = '\0';
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '}' => return Ok((&s[..i], &s[i + 1..])),
            None => {}
        }
        prev = if prev == '\\' && c == '\\' { '\0' } else { c };
    }
    Err("unclosed action: a `{` has no `}`".into())
}

enum Parsed {
    Range(Vec<Link>),
    End,
    Chain(Vec<Link>),
}

/// One action's text, by kubectl's grammar: `@` and `$` (the current value), `.field` (with
/// `\` escaping a terminator), `..` (recursive descent), `[...]` (index, slice, `*`, union,
/// `'key'`, filter), quoted literals, numbers, `true`/`false`, and `range`/`end`.
fn parse_action(action: &str) -> Result<Parsed, String> {
    let mut chain = Vec::new();
    let mut query = String::new();
    let mut range = false;
    let mut end = false;
    let b: Vec<char> = action.chars().collect();
    let mut i = 0;
    let flush = |query: &mut String, chain: &mut Vec<Link>| {
        if !query.is_empty() {
            chain.push(Link::Query(format!("${query}")));
            query.clear();
        }
    };
    while i < b.len() {
        let c = b[i];
        match c {
            ' ' | '\t' | '@' | '$' => i += 1,
            '.' if b.get(i + 1) == Some(&'.') => {
                if query.ends_with("..") {
                    return Err("invalid multiple recursive descent".into());
                }
                query.push_str("..");
                i += 2;
                if b.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    let (name, next) = field(&b, i);
                    query.push_str(&name_selector(&name));
                    i = next;
                }
            }
            '.' => {
                let (name, next) = field(&b, i + 1);
                if name == "*" {
                    query.push_str(if query.ends_with("..") { "*" } else { "[*]" });
                } else if name.is_empty() {
                    // `{.}`: the current value itself.
                } else {
                    if query.ends_with("..") {
                        query.push_str(&name_selector(&name));
                    } else {
                        query.push_str(&format!("[{}]", quote_name(&name)));
                    }
                }
                i = next;
            }
            '[' => {
                let (text, next) = brackets(&b, i)?;
                query.push_str(&bracket_selector(&text)?);
                i = next;
            }
            '"' | '\'' => {
                flush(&mut query, &mut chain);
                let mut j = i + 1;
                while j < b.len() && !(b[j] == c && b[j - 1] != '\\') {
                    j += 1;
                }
                if j >= b.len() {
                    return Err("unterminated quoted string".into());
                }
                let raw: String = b[i + 1..j].iter().collect();
                chain.push(Link::Literal(Value::String(unquote(&raw)?)));
                i = j + 1;
            }
            c if c == '+' || c == '-' || c.is_ascii_digit() => {
                flush(&mut query, &mut chain);
                let mut j = i + 1;
                while j < b.len() && (b[j] == '.' || b[j].is_ascii_digit()) {
                    j += 1;
                }
                let text: String = b[i..j].iter().collect();
                let v: Value = if let Ok(n) = text.parse::<i64>() {
                    Value::from(n)
                } else {
                    text.parse::<f64>()
                        .map(Value::from)
                        .map_err(|_| format!("cannot parse number {text}"))?
                };
                chain.push(Link::Literal(v));
                i = j;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let (word, next) = field(&b, i);
                match word.as_str() {
                    "range" => range = true,
                    "end" => end = true,
                    "true" | "false" => {
                        flush(&mut query, &mut chain);
                        chain.push(Link::Literal(Value::Bool(word == "true")));
                    }
                    w => return Err(format!("unrecognized identifier {w}")),
                }
                i = next;
            }
            c => return Err(format!("unrecognized character in action: {c:?}")),
        }
    }
    if query.ends_with("..") {
        return Err("a recursive descent (`..`) needs a field or `[...]` after it".into());
    }
    flush(&mut query, &mut chain);
    // Validate each query now, so that a bad template fails before anything is fetched.
    for link in &chain {
        if let Link::Query(q) = link {
            Value::Null
                .query(q)
                .map_err(|e| format!("{} is not a valid path: {e}", kubectl_form(q)))?;
        }
    }
    Ok(if end {
        Parsed::End
    } else if range {
        Parsed::Range(chain)
    } else {
        Parsed::Chain(chain)
    })
}

/// A query shown to the user without our leading `$`.
fn kubectl_form(q: &str) -> &str {
    q.strip_prefix('$').unwrap_or(q)
}

/// kubectl's terminators end a field name (a `\` escapes the next character).
fn field(b: &[char], mut i: usize) -> (String, usize) {
    let mut name = String::new();
    while i < b.len() {
        let c = b[i];
        if c == '\\' {
            if let Some(n) = b.get(i + 1) {
                name.push(*n);
            }
            i += 2;
            continue;
        }
        if matches!(
            c,
            ' ' | '\t' | '\n' | '\r' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
        ) {
            break;
        }
        name.push(c);
        i += 1;
    }
    (name, i)
}

/// The text between `[` and its `]`, and the index after the `]`. A filter's `(…)` and quoted
/// strings may hold `]`.
fn brackets(b: &[char], start: usize) -> Result<(String, usize), String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = start + 1;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q && b[i - 1] != '\\' => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ']' if depth == 0 => return Ok((b[start + 1..i].iter().collect(), i + 1)),
                '\n' => break,
                _ => {}
            },
        }
        i += 1;
    }
    Err("unterminated array: a `[` has no `]`".into())
}

/// `[…]` in RFC form.
fn bracket_selector(text: &str) -> Result<String, String> {
    if let Some(filter) = text.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return Ok(format!("[?{}]", filter_expr(filter)?));
    }
    if text.starts_with('?') {
        return Err(format!("invalid filter [{text}]: kubectl writes it [?(…)]"));
    }
    let text = if text == "*" { ":" } else { text };
    let mut parts = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if let Some(key) = part.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
            if key.contains('\'') {
                return Err(format!("invalid array index {text}"));
            }
            parts.push(quote_name(key));
        } else if is_slice(part) {
            parts.push(part.to_owned());
        } else {
            return Err(format!("invalid array index {part}"));
        }
    }
    Ok(format!("[{}]", parts.join(",")))
}

/// kubectl's slice grammar `-?\d*(:-?\d*)?(:-?\d*)?`, not empty.
fn is_slice(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() <= 3
        && parts.iter().all(|p| {
            let d = p.strip_prefix('-').unwrap_or(p);
            d.chars().all(|c| c.is_ascii_digit()) && !(p.starts_with('-') && d.is_empty())
        })
}

/// A filter's inner text (`@.type=="Ready"`, `@.ready`) in RFC form.
fn filter_expr(text: &str) -> Result<String, String> {
    let ops = ["==", "!=", "<=", ">=", "<", ">"];
    // kubectl splits at the first run of comparison characters outside quotes.
    let chars: Vec<char> = text.chars().collect();
    let mut quote: Option<char> = None;
    let mut split = None;
    for (i, c) in chars.iter().enumerate() {
        match quote {
            Some(q) if *c == q => quote = None,
            Some(_) => {}
            None if *c == '"' || *c == '\'' => quote = Some(*c),
            None if matches!(c, '!' | '<' | '>' | '=') => {
                let mut j = i;
                while j < chars.len() && matches!(chars[j], '!' | '<' | '>' | '=') {
                    j += 1;
                }
                split = Some((i, j));
                break;
            }
            None => {}
        }
    }
    let Some((a, z)) = split else {
        return operand(text.trim());
    };
    let op: String = chars[a..z].iter().collect();
    if !ops.contains(&op.as_str()) {
        return Err(format!("unrecognized filter operator {op}"));
    }
    let left: String = chars[..a].iter().collect();
    let right: String = chars[z..].iter().collect();
    Ok(format!(
        "{} {op} {}",
        operand(left.trim())?,
        operand(right.trim())?
    ))
}

/// One side of a comparison: a path from the item (`@.a.b`), or a literal.
fn operand(text: &str) -> Result<String, String> {
    if let Some(q) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let inner = text
            .strip_prefix(q)
            .and_then(|t| t.strip_suffix(q))
            .ok_or_else(|| format!("unterminated quoted string {text}"))?;
        return serde_json::to_string(&unquote(inner)?).map_err(|e| e.to_string());
    }
    if text == "true" || text == "false" || text == "null" {
        return Ok(text.to_owned());
    }
    if text.parse::<f64>().is_ok() {
        return Ok(text.to_owned());
    }
    let Parsed::Chain(chain) = parse_action(text)? else {
        return Err(format!("range and end have no place in a filter: {text}"));
    };
    match chain.as_slice() {
        [Link::Query(q)] => Ok(format!("@{}", kubectl_form(q))),
        [] => Ok("@".into()),
        _ => Err(format!("invalid filter operand {text}")),
    }
}

/// A name selector after `..` (RFC `..['a']`).
fn name_selector(name: &str) -> String {
    format!("[{}]", quote_name(name))
}

/// A member name as an RFC single-quoted string.
fn quote_name(name: &str) -> String {
    let mut s = String::from("'");
    for c in name.chars() {
        match c {
            '\'' => s.push_str("\\'"),
            '\\' => s.push_str("\\\\"),
            c if u32::from(c) < 0x20 => s.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => s.push(c),
        }
    }
    s.push('\'');
    s
}

/// Go's `strconv.Unquote` escapes, as kubectl's `UnquoteExtend` reads a quoted literal.
fn unquote(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some('0') => out.push('\0'),
            Some(c @ ('\\' | '"' | '\'')) => out.push(c),
            Some(c) => return Err(format!("unknown escape \\{c} in a quoted string")),
            None => return Err("a quoted string ends in `\\`".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    fn list() -> Value {
        json!({"apiVersion": "v1", "kind": "List", "items": [
            {"metadata": {"name": "test", "annotations": {"kargo.akuity.io/authorized-stage": "p:test"}},
             "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Healthy", "status": "False"}],
                        "freightSummary": "abc", "count": 3, "ratio": 2.5}},
            {"metadata": {"name": "prod"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        ]})
    }

    #[test]
    fn fields_text_and_results_joined_by_spaces() {
        let l = list();
        assert_eq!(run("{.items[*].metadata.name}", &l), "test prod");
        assert_eq!(run("names: {.items[0].metadata.name}!", &l), "names: test!");
        assert_eq!(run("{.kind}{\"\\n\"}", &l), "List\n");
        assert_eq!(run("{$.kind} {@.apiVersion}", &l), "List v1");
        assert_eq!(run("{.items[-1].metadata.name}", &l), "prod");
        assert_eq!(run("{.items[0:1].metadata.name}", &l), "test");
        assert_eq!(
            run("{.items[0].status.count} {.items[0].status.ratio}", &l),
            "3 2.5"
        );
    }

    #[test]
    fn escaped_dots_and_quoted_keys_name_one_key() {
        let l = list();
        assert_eq!(
            run(
                "{.items[0].metadata.annotations.kargo\\.akuity\\.io/authorized-stage}",
                &l
            ),
            "p:test"
        );
        assert_eq!(
            run(
                "{.items[0].metadata.annotations['kargo.akuity.io/authorized-stage']}",
                &l
            ),
            "p:test"
        );
    }

    #[test]
    fn range_filters_and_recursion() {
        let l = list();
        assert_eq!(
            run(
                "{range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
                &l
            ),
            "test=True\nprod=False\n"
        );
        assert_eq!(run("{..freightSummary}", &l), "abc");
        assert_eq!(
            run(
                "{.items[*].status.conditions[?(@.status!='True')].type}",
                &l
            ),
            "Healthy Ready"
        );
        assert_eq!(run("{.items[?(@.status.count)].metadata.name}", &l), "test");
        assert_eq!(
            run("{.items[?(@.status.count>=3)].metadata.name}", &l),
            "test"
        );
    }

    #[test]
    fn maps_and_lists_print_as_go_json_and_missing_keys_print_nothing() {
        let v = json!({"m": {"z": 1, "a": "<&>", "f": 0.5}, "l": [1, "x", null], "n": null});
        assert_eq!(
            run("{.m}", &v),
            r#"{"a":"\u003c\u0026\u003e","f":0.5,"z":1}"#
        );
        assert_eq!(run("{.l}", &v), r#"[1,"x",null]"#);
        assert_eq!(run("[{.missing.deeper}]", &v), "[]");
        assert_eq!(run("{.n}", &v), "null");
        assert_eq!(run("{.l[*]}", &v), "1 x null");
    }

    #[test]
    fn go_prints_floats_its_own_way() {
        assert_eq!(go_float(1e6, 6, false), "1e+06");
        assert_eq!(go_float(123456.5, 6, false), "123456.5");
        assert_eq!(go_float(0.0001, 6, false), "0.0001");
        assert_eq!(go_float(0.00001, 6, false), "1e-05");
        assert_eq!(go_float(1e21, 21, true), "1e+21");
        assert_eq!(go_float(1e-7, 21, true), "1e-7");
        assert_eq!(go_float(2.5, 21, true), "2.5");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        for (t, want) in [
            ("{.items", "unclosed action"),
            ("{end}", "without a {range}"),
            ("{.items[x]}", "invalid array index x"),
            ("{foo}", "unrecognized identifier foo"),
            ("{.a[?(@.b=c)]}", "unrecognized filter operator ="),
            ("{.a..}", "recursive descent"),
            ("{\"a}", "unclosed action"),
        ] {
            let e = Template::parse(t).unwrap_err();
            assert!(e.contains(want), "{t}: {e}");
        }
    }

    #[test]
    fn dash_o_takes_kubectl_names_and_jsonpath() {
        use crate::output::{Format, parse_format};
        assert_eq!(parse_format("wide"), Ok(Format::Wide));
        let Ok(Format::Jsonpath(t)) = parse_format("jsonpath='{.kind}'") else {
            panic!("jsonpath= parses");
        };
        assert_eq!(t.render(&json!({"kind": "Stage"})).unwrap(), "Stage");
        let doc = json!({"promotion": "p1", "phase": "Succeeded"});
        assert_eq!(
            parse_format("jsonpath={.promotion} {.phase}")
                .unwrap()
                .data(&doc)
                .unwrap()
                .unwrap(),
            "p1 Succeeded"
        );
        assert!(
            parse_format("jsonpath=")
                .unwrap_err()
                .contains("needs a template")
        );
        assert!(
            parse_format("go-template={{.x}}")
                .unwrap_err()
                .contains("jsonpath=TEMPLATE")
        );
        assert!(parse_format("table").unwrap().data(&doc).is_none());
    }
}
