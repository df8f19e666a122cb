//! Format-preserving YAML edits: only the bytes of the edited scalar change; comments, key order,
//! quoting style, anchors and aliases, block scalars elsewhere, blank lines, indentation and CRLF
//! line endings stay exactly as they were.
//!
//! Why not a crate: `yamlpatch` (zizmor's) needs rustc 1.97 at its current version and rewrites a
//! whole `key: value` span on replace; parse-and-reserialize loses formatting. We parse with
//! `saphyr-parser` (a maintained YAML 1.2 event parser with source spans), build a small tree of
//! byte spans, and splice text. Quoted-scalar end positions are recomputed here because the parser's
//! spans overshoot them (they run to the next token).

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Value};

/// What can go wrong while editing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum YamlError {
    /// The text is not valid YAML.
    #[error("invalid YAML at line {line}, column {col}: {message}")]
    Parse {
        line: usize,
        col: usize,
        message: String,
    },
    /// The path cannot be followed or edited.
    #[error("cannot update key {key:?}: {reason}")]
    Path { key: String, reason: String },
}

/// One part of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPart {
    /// A mapping key.
    Key(String),
    /// A sequence index; `-1` (or any index past the end) appends.
    Index(i64),
}

/// Split a key with Kargo's rules (`pkg/sjson`): `.` separates parts, `\.` is a literal dot,
/// all-digit parts (and `-1`) index sequences unless prefixed with `:` which forces a map key.
pub fn split_key(key: &str) -> Vec<PathPart> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = key.chars().peekable();
    let mut push = |s: &mut String| {
        let raw = std::mem::take(s);
        if let Some(k) = raw.strip_prefix(':') {
            parts.push(PathPart::Key(k.to_owned()));
        } else if let Ok(i) = raw.parse::<i64>().map_err(|_| ()).and_then(|i| {
            if i >= -1 && !raw.starts_with('+') {
                Ok(i)
            } else {
                Err(())
            }
        }) {
            parts.push(PathPart::Index(i));
        } else {
            parts.push(PathPart::Key(raw));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                cur.push('.');
                chars.next();
            }
            '.' => push(&mut cur),
            c => cur.push(c),
        }
    }
    push(&mut cur);
    parts
}

#[derive(Debug)]
enum Kind {
    Scalar {
        style: ScalarStyle,
        value: String,
    },
    Map {
        entries: Vec<(Node, Node)>,
        flow: bool,
    },
    Seq {
        items: Vec<Node>,
        flow: bool,
    },
    Alias,
    /// A node off the path being edited: only its span was kept.
    Skipped,
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    /// Byte offset where the node's text starts (for block collections: the first entry).
    start: usize,
    /// Byte offset just past the node's text (for flow collections: past the closing bracket).
    end: usize,
    /// Column of the node's first character.
    col: usize,
}

/// A YAML document being edited.
#[derive(Clone, Debug)]
pub struct YamlDoc {
    text: String,
    /// Whether an edit changed the text (a value set to what it already was does not).
    changed: bool,
}

/// Byte offsets of character indices (the parser's marks count characters): one checkpoint
/// every [`STRIDE`] characters instead of one offset per character, which cost 8 bytes per byte
/// of an ASCII file (a 73 MB values file took 584 MB for this table alone).
struct Offsets {
    ascii: bool,
    checkpoints: Vec<usize>,
}

const STRIDE: usize = 64;

impl Offsets {
    fn new(text: &str) -> Offsets {
        let ascii = text.is_ascii();
        let checkpoints = if ascii {
            Vec::new()
        } else {
            text.char_indices()
                .step_by(STRIDE)
                .map(|(i, _)| i)
                .collect()
        };
        Offsets { ascii, checkpoints }
    }

    fn byte(&self, text: &str, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(text.len());
        }
        let Some(&from) = self.checkpoints.get(char_index / STRIDE) else {
            return text.len();
        };
        text[from..]
            .char_indices()
            .nth(char_index % STRIDE)
            .map_or(text.len(), |(i, _)| from + i)
    }
}

struct Builder<'a> {
    text: &'a str,
    offsets: Offsets,
}

/// The parser's events as the builder reads them (document and stream markers left out), one at
/// a time: the first error ends the stream and is kept for [`parse_tree`] to return.
struct Events<'a, 'c> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    error: &'c std::cell::RefCell<Option<YamlError>>,
}

impl<'a> Iterator for Events<'a, '_> {
    type Item = (Event<'a>, usize, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.error.borrow().is_some() {
            return None;
        }
        loop {
            match self.parser.next_event()? {
                Err(e) => {
                    *self.error.borrow_mut() = Some(YamlError::Parse {
                        line: e.marker().line(),
                        col: e.marker().col() + 1,
                        message: e.info().to_owned(),
                    });
                    return None;
                }
                Ok((
                    Event::StreamStart
                    | Event::StreamEnd
                    | Event::DocumentStart(_)
                    | Event::DocumentEnd
                    | Event::Nothing,
                    _,
                )) => {}
                Ok((ev, span)) => {
                    return Some((ev, span.start.index(), span.end.index(), span.start.col()));
                }
            }
        }
    }
}

/// Which part of a node the builder keeps: the path below it (`Some`), whose nodes are built with
/// their children, or nothing (`None`): only the node's span, which is all that siblings of the
/// path are read for. Memory follows the path, not the document.
type Along<'p> = Option<&'p [PathPart]>;

impl Builder<'_> {
    fn byte(&self, char_index: usize) -> usize {
        self.offsets.byte(self.text, char_index)
    }

    /// Skip an anchor (`&a`) or tag (`!t`) that a scalar's span starts with.
    fn skip_properties(&self, mut start: usize, end: usize) -> usize {
        let b = self.text.as_bytes();
        while start < end && matches!(b.get(start), Some(b'&' | b'!')) {
            if b.get(start + 1) == Some(&b'<') {
                // A verbatim tag (`!<tag:a,b>`) ends at its `>`.
                while start < end && b[start] != b'>' {
                    start += 1;
                }
            }
            start += 1;
            while start < end
                && !b[start].is_ascii_whitespace()
                && !matches!(b[start], b',' | b'[' | b']' | b'{' | b'}')
            {
                start += 1;
            }
            while start < end && b[start].is_ascii_whitespace() {
                start += 1;
            }
        }
        start
    }

    /// End of a quoted scalar starting at `start` (the quote character).
    fn quoted_end(&self, start: usize, style: ScalarStyle) -> usize {
        let b = self.text.as_bytes();
        let mut i = start + 1;
        while i < b.len() {
            match (style, b[i]) {
                (ScalarStyle::DoubleQuoted, b'\\') => i += 2,
                (ScalarStyle::DoubleQuoted, b'"') => return i + 1,
                (ScalarStyle::SingleQuoted, b'\'') => {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                    } else {
                        return i + 1;
                    }
                }
                _ => i += 1,
            }
        }
        b.len()
    }

    /// Where a collection's own text begins: its start event's span begins at its properties
    /// (`&anchor`, `!tag`), which may stand on the line before (found by fuzzing: `!t\n{a: 1}`
    /// was taken for a block mapping, and a key added to it went after the `}`).
    fn content_start(&self, mut at: usize) -> usize {
        let b = self.text.as_bytes();
        loop {
            match b.get(at) {
                Some(b' ' | b'\t' | b'\n' | b'\r') => at += 1,
                Some(b'#') => {
                    while !matches!(b.get(at), None | Some(b'\n' | b'\r')) {
                        at += 1;
                    }
                }
                Some(b'!') if b.get(at + 1) == Some(&b'<') => {
                    while !matches!(b.get(at), None | Some(b'>')) {
                        at += 1;
                    }
                    at += 1;
                }
                // An anchor or tag ends at a blank or a flow indicator (YAML 1.2's ns-anchor-char
                // and ns-tag-char leave out `,[]{}`; found by fuzzing: `&a{b: 1}` was taken for
                // a block mapping).
                Some(b'&' | b'!') => {
                    at += 1;
                    while !matches!(
                        b.get(at),
                        None | Some(
                            b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}'
                        )
                    ) {
                        at += 1;
                    }
                }
                _ => return at,
            }
        }
    }

    /// Just past a flow collection's closing bracket, from its end event's span (in characters),
    /// which also covers the spaces after the bracket (found by fuzzing: `{b: 1} ,c: 1` put a
    /// key added to `{b: 1}` after its `}`).
    fn closing(&self, bracket: u8, start: usize, end: usize) -> usize {
        let (start, end) = (self.byte(start), self.byte(end));
        self.text
            .as_bytes()
            .get(start..end.max(start))
            .and_then(|span| span.iter().position(|&b| b == bracket))
            .map_or(end.max(start + 1), |i| start + i + 1)
    }

    /// The next node; `along` says how much of it to keep (see [`Along`]). Mapping keys are
    /// always kept (paths match them).
    fn node<'e>(
        &self,
        events: &mut std::iter::Peekable<impl Iterator<Item = (Event<'e>, usize, usize, usize)>>,
        along: Along<'_>,
    ) -> Option<Node> {
        let (ev, s, e, col) = events.next()?;
        Some(match ev {
            Event::Scalar(value, style, _, _) => {
                let start = self.skip_properties(self.byte(s), self.byte(e));
                let end = match style {
                    ScalarStyle::DoubleQuoted | ScalarStyle::SingleQuoted => {
                        self.quoted_end(start, style)
                    }
                    _ => self.byte(e),
                };
                let kind = match along {
                    Some(_) => Kind::Scalar {
                        style,
                        value: value.into_owned(),
                    },
                    None => Kind::Skipped,
                };
                Node {
                    kind,
                    start,
                    end,
                    col,
                }
            }
            Event::Alias(_) => Node {
                kind: Kind::Alias,
                start: self.byte(s),
                end: self.byte(e),
                col,
            },
            Event::MappingStart(..) => {
                let start = self.byte(s);
                // `{` starts a flow mapping, or a block mapping whose first key is one (`{a: b}: c`,
                // found by fuzzing): known once the first key is read.
                let content = self.content_start(start);
                let mut flow = self.text.as_bytes().get(content) == Some(&b'{');
                let mut first = true;
                let mut entries = Vec::new();
                let mut end = start;
                // The first entry whose key is the path's next part is followed (as `find`
                // does when the tree is read).
                let mut next = match along {
                    Some([PathPart::Key(k), rest @ ..]) => Some((k.as_str(), rest)),
                    _ => None,
                };
                loop {
                    if matches!(events.peek(), Some((Event::MappingEnd, ..)) | None) {
                        if let Some((_, ms, me, _)) = events.next()
                            && flow
                        {
                            end = self.closing(b'}', ms, me);
                        }
                        break;
                    }
                    let k = self.node(events, along.map(|_| &[][..]))?;
                    if first && flow && (k.start == start || k.start == content) {
                        flow = false;
                    }
                    first = false;
                    let follow = match next {
                        Some((key, rest)) if scalar_is(&k, key) => {
                            next = None;
                            Some(rest)
                        }
                        _ => None,
                    };
                    let v = self.node(events, follow)?;
                    if !flow {
                        end = v.end.max(k.end);
                    }
                    if along.is_some() {
                        entries.push((k, v));
                    }
                }
                let kind = match along {
                    Some(_) => Kind::Map { entries, flow },
                    None => Kind::Skipped,
                };
                Node {
                    kind,
                    start,
                    end,
                    col,
                }
            }
            Event::SequenceStart(..) => {
                let start = self.byte(s);
                let flow = self.text.as_bytes().get(self.content_start(start)) == Some(&b'[');
                let mut items = Vec::new();
                let mut end = start;
                let next = match along {
                    Some([PathPart::Index(i), rest @ ..]) => {
                        usize::try_from(*i).ok().map(|i| (i, rest))
                    }
                    _ => None,
                };
                let mut index = 0usize;
                loop {
                    if matches!(events.peek(), Some((Event::SequenceEnd, ..)) | None) {
                        if let Some((_, ss, se, _)) = events.next()
                            && flow
                        {
                            end = self.closing(b']', ss, se);
                        }
                        break;
                    }
                    let follow = next.filter(|(i, _)| *i == index).map(|(_, rest)| rest);
                    let item = self.node(events, follow)?;
                    if !flow {
                        end = item.end;
                    }
                    if along.is_some() {
                        items.push(item);
                    }
                    index += 1;
                }
                let kind = match along {
                    Some(_) => Kind::Seq { items, flow },
                    None => Kind::Skipped,
                };
                Node {
                    kind,
                    start,
                    end,
                    col,
                }
            }
            _ => return None,
        })
    }
}

/// Parse `text` (all of it: an error anywhere is an error) into the tree along `path`: the nodes
/// on the path with their children, everything else as spans only (see [`Along`]).
fn parse_tree(text: &str, path: &[PathPart]) -> Result<Option<Node>, YamlError> {
    let b = Builder {
        text,
        offsets: Offsets::new(text),
    };
    let error = std::cell::RefCell::new(None);
    let mut events = Events {
        parser: Parser::new_from_str(text),
        error: &error,
    }
    .peekable();
    let root = b.node(&mut events, Some(path));
    // The rest of the stream (later documents) is read for its errors only.
    for _ in events {}
    match error.into_inner() {
        Some(e) => Err(e),
        None => Ok(root),
    }
}

fn describe(path: &[PathPart]) -> String {
    path.iter()
        .map(|p| match p {
            PathPart::Key(k) => k.replace('.', "\\."),
            PathPart::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// YAML 1.1 words some Kubernetes tooling still reads as booleans.
fn is_yaml11_special(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~" | ""
    )
}

fn plain_is_safe(s: &str, in_flow: bool) -> bool {
    if s.is_empty()
        || s.trim() != s
        || is_yaml11_special(s)
        || !s.chars().all(|c| yaml_inline(c) && c != '\t')
    {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if in_flow && s.contains([',', '[', ']', '{', '}']) {
        return false;
    }
    let first = s.as_bytes()[0];
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&first)
        && !(first == b'-'
            && s.len() > 1
            && !s.starts_with("- ")
            && s.as_bytes()[1] != b' '
            && s != "---")
    {
        return false;
    }
    // Anything that reads back as a number (or other non-string) must be quoted.
    matches!(serde_yaml::from_str::<serde_yaml::Value>(s), Ok(serde_yaml::Value::String(ref back)) if back == s)
}

/// Whether YAML may hold `c` unescaped (`c-printable` of YAML 1.2, tab included).
fn yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Whether `c` may stand unescaped inside a one-line quoted scalar: printable, and not one of
/// YAML 1.1's line breaks (NEL, LS, PS), which libyaml folds like a newline (found by the
/// yaml_update fuzz target: a key holding U+0085 in a flow mapping broke the document).
fn yaml_inline(c: char) -> bool {
    yaml_printable(c)
        && !matches!(
            c,
            '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}'
        )
}

/// A double-quoted YAML scalar. JSON's escaping is not enough: YAML also forbids DEL and the C1
/// controls unescaped (found by the yaml_update fuzz target: a value holding U+007F made a file
/// no YAML parser reads).
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if yaml_inline(c) => out.push(c),
            c if u32::from(c) <= 0xFF => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push_str(&format!("\\u{:04x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Render a JSON value as YAML text, keeping the old scalar's quoting style where it can.
fn render(value: &Value, old: Option<ScalarStyle>, in_flow: bool) -> String {
    match value {
        Value::String(s) => match old {
            Some(ScalarStyle::SingleQuoted) if s.chars().all(|c| yaml_inline(c) || c == '\t') => {
                format!("'{}'", s.replace('\'', "''"))
            }
            Some(ScalarStyle::DoubleQuoted) => double_quoted(s),
            _ if plain_is_safe(s, in_flow) => s.clone(),
            _ => double_quoted(s),
        },
        Value::Null => "null".to_owned(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        other => flow(other),
    }
}

/// A JSON array or object as a YAML flow collection, written as compact JSON is (YAML reads
/// JSON), but not by `serde_json::to_string`: JSON leaves DEL, the C1 controls and YAML 1.1's
/// line breaks raw in its strings, which YAML refuses.
fn flow(value: &Value) -> String {
    match value {
        Value::String(s) => double_quoted(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(m) => {
            let entries: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", double_quoted(k), flow(v)))
                .collect();
            format!("{{{}}}", entries.join(","))
        }
        scalar => scalar.to_string(),
    }
}

impl YamlDoc {
    /// Parse a document (checks it is valid YAML).
    pub fn parse(text: &str) -> Result<Self, YamlError> {
        Self::from_text(text.to_owned())
    }

    /// [`YamlDoc::parse`] of a text it takes over (no copy: a large file is held once).
    pub fn from_text(text: String) -> Result<Self, YamlError> {
        parse_tree(&text, &[])?;
        Ok(Self {
            text,
            changed: false,
        })
    }

    /// The current text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The current text, taken.
    pub fn into_text(self) -> String {
        self.text
    }

    /// Whether any edit changed the text.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Replace `range` with `with`, noting whether that changed anything.
    fn splice(&mut self, range: std::ops::Range<usize>, with: &str) {
        if self.text.get(range.clone()) != Some(with) {
            self.text.replace_range(range, with);
            self.changed = true;
        }
    }

    /// Insert `with` at `at`.
    fn insert(&mut self, at: usize, with: &str) {
        self.text.insert_str(at, with);
        self.changed = true;
    }

    fn newline(&self) -> &'static str {
        if self.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// The scalar at `path`, as its string value; `None` when absent or not a scalar.
    pub fn get_str(&self, path: &[PathPart]) -> Option<String> {
        let root = parse_tree(&self.text, path).ok()??;
        let mut node = &root;
        for part in path {
            node = match (&node.kind, part) {
                (Kind::Map { entries, .. }, PathPart::Key(k)) => {
                    &entries.iter().find(|(key, _)| scalar_is(key, k))?.1
                }
                (Kind::Seq { items, .. }, PathPart::Index(i)) => {
                    items.get(usize::try_from(*i).ok()?)?
                }
                _ => return None,
            };
        }
        match &node.kind {
            Kind::Scalar { value, .. } => Some(value.clone()),
            _ => None,
        }
    }

    /// Number of items in the sequence at `path` (0 when absent).
    pub fn seq_len(&self, path: &[PathPart]) -> usize {
        let Ok(Some(root)) = parse_tree(&self.text, path) else {
            return 0;
        };
        let mut node = &root;
        for part in path {
            let next = match (&node.kind, part) {
                (Kind::Map { entries, .. }, PathPart::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| scalar_is(key, k))
                    .map(|e| &e.1),
                (Kind::Seq { items, .. }, PathPart::Index(i)) => {
                    usize::try_from(*i).ok().and_then(|i| items.get(i))
                }
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return 0,
            }
        }
        match &node.kind {
            Kind::Seq { items, .. } => items.len(),
            _ => 0,
        }
    }

    /// Set the value at `path`, creating missing mapping keys (and nested mappings) and appending
    /// to sequences for `-1` or an index past the end.
    pub fn set(&mut self, path: &[PathPart], value: &Value) -> Result<(), YamlError> {
        let err = |reason: String| YamlError::Path {
            key: describe(path),
            reason,
        };
        if path.is_empty() {
            return Err(err("the key is empty".into()));
        }
        let root = parse_tree(&self.text, path)?;
        let Some(root) = root else {
            // Empty document: write the whole path as block mappings.
            let nl = self.newline();
            let mut text = self.text.clone();
            text.push_str(&self.block_tail(path, value, 0, nl).map_err(err)?);
            text.push_str(nl);
            self.text = text.trim_start_matches(['\n', '\r']).to_owned();
            self.changed = true;
            return Ok(());
        };
        let mut node = &root;
        let mut key_of_node: Option<&Node> = None;
        let mut in_flow = false;
        for (depth, part) in path.iter().enumerate() {
            let rest = &path[depth + 1..];
            match (&node.kind, part) {
                (Kind::Map { entries, flow }, PathPart::Key(k)) => {
                    in_flow |= *flow;
                    match entries.iter().find(|(key, _)| scalar_is(key, k)) {
                        Some((key, v)) => {
                            node = v;
                            key_of_node = Some(key);
                        }
                        None => {
                            return self
                                .insert_into_map(node, entries, *flow, k, rest, value)
                                .map_err(err);
                        }
                    }
                }
                (Kind::Seq { items, flow }, PathPart::Index(i)) => {
                    in_flow |= *flow;
                    match usize::try_from(*i).ok().and_then(|i| items.get(i)) {
                        Some(item) => {
                            node = item;
                            key_of_node = None;
                        }
                        None => {
                            return self
                                .append_to_seq(node, items, *flow, rest, value)
                                .map_err(err);
                        }
                    }
                }
                (Kind::Alias, _) => {
                    return Err(err(
                        "it goes through an alias; edit the anchored value instead".into(),
                    ));
                }
                (Kind::Map { .. }, PathPart::Index(_)) => {
                    return Err(err(format!(
                        "{:?} is a mapping, not a sequence",
                        describe(&path[..depth])
                    )));
                }
                (Kind::Seq { .. }, PathPart::Key(k)) => {
                    return Err(err(format!(
                        "{:?} is a sequence, not a mapping (key {k:?})",
                        describe(&path[..depth])
                    )));
                }
                (Kind::Scalar { .. }, _) => {
                    return Err(err(format!(
                        "{:?} is a scalar, not a mapping or sequence",
                        describe(&path[..depth])
                    )));
                }
                // Nodes on the path are always built; this would be a bug of the builder.
                (Kind::Skipped, _) => {
                    return Err(err(format!(
                        "{:?} was not read (an internal error; please report it)",
                        describe(&path[..depth])
                    )));
                }
            }
        }
        match &node.kind {
            Kind::Scalar {
                style,
                value: current,
            } => {
                let empty = *style == ScalarStyle::Plain && current.is_empty();
                let (start, style) = match style {
                    ScalarStyle::Literal | ScalarStyle::Folded => {
                        (self.block_indicator(node.start), ScalarStyle::Plain)
                    }
                    s => (node.start, *s),
                };
                let mut end = node.end;
                if matches!(
                    node.kind,
                    Kind::Scalar {
                        style: ScalarStyle::Literal | ScalarStyle::Folded,
                        ..
                    }
                ) {
                    // keep the line break that ended the block scalar
                    while end > start && matches!(self.text.as_bytes()[end - 1], b'\n' | b'\r') {
                        end -= 1;
                    }
                }
                let text = render(value, Some(style), in_flow);
                if empty
                    && let Some(key) = key_of_node
                    && let Some(at) = self.explicit_key_without_colon(key)
                {
                    // `? key` with no `: value` line at all (found by fuzzing: the value was
                    // written at the start of the next key's line): the `:` line goes after
                    // the key's, at the `?`'s column.
                    let indent = self.explicit_key_col(key).unwrap_or(key.col);
                    let nl = self.newline();
                    self.insert(at, &format!("{nl}{}: {text}", " ".repeat(indent)));
                    return Ok(());
                }
                if empty {
                    // An empty value (`tag:`, `- `, `{a, b: 1}`) has no text to replace: its
                    // span sits before the indicator that announces it, or over the separator
                    // that follows (found by fuzzing: the value was glued to the key).
                    let (at, text) = self.empty_value(start, &text);
                    self.insert(at, &text);
                    return Ok(());
                }
                self.splice(start..end, &text);
                Ok(())
            }
            Kind::Alias => Err(err(
                "the value is an alias; edit the anchored value instead".into(),
            )),
            _ => {
                let text = render(value, None, true);
                let flow = matches!(
                    node.kind,
                    Kind::Map { flow: true, .. } | Kind::Seq { flow: true, .. }
                );
                let mut end = node.end.min(self.text.len());
                if !flow {
                    // A block collection's span may end at the start of the line after it, or
                    // inside its last line (before the `:` of an empty last value, found by
                    // fuzzing): it is replaced to the end of its last line.
                    let b = self.text.as_bytes();
                    if end > node.start && b[end - 1] == b'\n' {
                        end -= 1;
                        if end > node.start && b[end - 1] == b'\r' {
                            end -= 1;
                        }
                    } else {
                        end = self.line_end(end);
                    }
                }
                self.splice(node.start..end, &text);
                Ok(())
            }
        }
    }

    /// Remove the mapping key at `path` (its whole `key: value` lines in block style). Returns
    /// whether it existed.
    pub fn remove(&mut self, path: &[PathPart]) -> Result<bool, YamlError> {
        let err = |reason: String| YamlError::Path {
            key: describe(path),
            reason,
        };
        let Some((last, parent_path)) = path.split_last() else {
            return Ok(false);
        };
        let PathPart::Key(key) = last else {
            return Err(err("only mapping keys can be removed".into()));
        };
        let Some(root) = parse_tree(&self.text, path)? else {
            return Ok(false);
        };
        let mut node = &root;
        for part in parent_path {
            node = match (&node.kind, part) {
                (Kind::Map { entries, .. }, PathPart::Key(k)) => {
                    match entries.iter().find(|(kk, _)| scalar_is(kk, k)) {
                        Some((_, v)) => v,
                        None => return Ok(false),
                    }
                }
                (Kind::Seq { items, .. }, PathPart::Index(i)) => {
                    match usize::try_from(*i).ok().and_then(|i| items.get(i)) {
                        Some(v) => v,
                        None => return Ok(false),
                    }
                }
                _ => return Ok(false),
            };
        }
        let Kind::Map { entries, flow } = &node.kind else {
            return Ok(false);
        };
        let Some(idx) = entries.iter().position(|(k, _)| scalar_is(k, key)) else {
            return Ok(false);
        };
        if *flow {
            return Err(err(
                "removing keys from flow mappings is not supported".into()
            ));
        }
        if entries.len() == 1 {
            return Err(err("it is the only key of its mapping".into()));
        }
        let (k, v) = &entries[idx];
        let b = self.text.as_bytes();
        // From the start of the key's line (or right after "- " when it is the first key of a
        // sequence item) to the end of the value's last line.
        let line_start = self.text[..k.start].rfind('\n').map_or(0, |i| i + 1);
        let first_in_item = self.text[line_start..k.start].trim_start().starts_with('-');
        let end = self.line_end(v.end.max(k.end));
        let end = if end < b.len() {
            end + if b[end] == b'\r' { 2 } else { 1 }
        } else {
            end
        };
        if first_in_item {
            // "- key: v\n  next: w" becomes "- next: w": cut from this key to the next one.
            let next_start = entries[idx + 1].0.start;
            self.splice(k.start..next_start, "");
            return Ok(true);
        }
        let end = end.min(self.text.len());
        self.splice(line_start..end, "");
        Ok(true)
    }

    /// Where and what to write for `rendered` in place of the empty value whose (empty) span is
    /// at `at`: after the `:` that follows, with a space; after a sequence's `-` or the value's
    /// anchor or tag, with a space; for a flow mapping's key without a value, `: ` and the value.
    fn empty_value(&self, at: usize, rendered: &str) -> (usize, String) {
        let b = self.text.as_bytes();
        let mut next = at;
        while next < b.len() && matches!(b[next], b' ' | b'\t') {
            next += 1;
        }
        match b.get(next) {
            Some(b':') => (next + 1, format!(" {rendered}")),
            Some(b',' | b'}') => (at, format!(": {rendered}")),
            // After a sequence's `-`, or an anchor or tag of the empty value (`&a`), a space.
            _ if at > 0 && !matches!(b[at - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                (at, format!(" {rendered}"))
            }
            _ => (at, rendered.to_owned()),
        }
    }

    /// The column of the `?` when `key` is an explicit key (`? key`), else `None`.
    fn explicit_key_col(&self, key: &Node) -> Option<usize> {
        let b = self.text.as_bytes();
        // Back over the blanks and the key's anchor and tag (`? &a !t key`) to the `?`. The key
        // may start on a line of its own below the `?` (`?\n  &a k`), indented past it, and its
        // anchor or tag may stay on the `?`'s line (`? &a\n  k`) (both found by fuzzing: an
        // anchored empty key there lost its `: value`, and a key added after one went under it).
        let mut i = key.start.min(b.len());
        let mut crossed = false;
        loop {
            while i > 0 && matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') {
                crossed |= matches!(b[i - 1], b'\n' | b'\r');
                i -= 1;
            }
            let token = self.text[..i]
                .rfind([' ', '\t', '\n', '\r'])
                .map_or(0, |n| n + 1);
            if token < i && matches!(b[token], b'&' | b'!') {
                i = token;
                continue;
            }
            break;
        }
        if i == 0 || b[i - 1] != b'?' || i == key.start {
            return None;
        }
        let q = i - 1;
        if q > 0 && !matches!(b[q - 1], b' ' | b'\t' | b'\n' | b'\r') {
            return None;
        }
        let line_start = self.text[..q].rfind(['\n', '\r']).map_or(0, |n| n + 1);
        let col = q - line_start;
        // An empty key (`?` alone) has its empty span wherever the parser stopped, maybe lines
        // below (found by fuzzing: a key added after ` ?` went to column 0).
        if crossed && key.end > key.start {
            let key_line = self.text[..key.start.min(b.len())]
                .rfind(['\n', '\r'])
                .map_or(0, |n| n + 1);
            let indent = b[key_line..]
                .iter()
                .take_while(|c| matches!(c, b' ' | b'\t'))
                .count();
            if indent <= col {
                return None;
            }
        }
        Some(col)
    }

    /// For an explicit key whose entry has no `:` (`? key` alone), where its `: value` line goes:
    /// the end of the key's line. `None` when the key is not explicit or a `:` follows it.
    fn explicit_key_without_colon(&self, key: &Node) -> Option<usize> {
        self.explicit_key_col(key)?;
        let b = self.text.as_bytes();
        let end = self.line_end(key.end.min(b.len()));
        let mut i = end;
        loop {
            while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            if b.get(i) == Some(&b'#') {
                i = self.line_end(i);
                continue;
            }
            break;
        }
        // A `:` right after the key on its own line (`? key :`) counts too.
        let same_line = self.text[key.end.min(b.len())..end].trim_start();
        if b.get(i) == Some(&b':') || same_line.starts_with(':') {
            return None;
        }
        Some(end)
    }

    fn line_end(&self, from: usize) -> usize {
        self.text[from..]
            .find(['\n', '\r'])
            .map_or(self.text.len(), |i| from + i)
    }

    fn block_indicator(&self, content_start: usize) -> usize {
        // The parser's span starts at the content, or at the indicator itself when the scalar
        // has no content (found by fuzzing: in `k|k: |` at the end of a file the `|` of the key
        // was taken for the indicator). An indicator is followed by a header (`[1-9+-]*`, then
        // spaces and a comment or the line's end) and preceded on its line by a key, `- `, `? `,
        // `---` or properties; a content line starting with `>` or `|` has only indentation
        // before it.
        let bytes = self.text.as_bytes();
        if matches!(bytes.get(content_start), Some(b'|' | b'>')) {
            let line_start = self.text[..content_start].rfind('\n').map_or(0, |i| i + 1);
            let before = self.text[line_start..content_start].trim();
            let rest = &self.text[content_start + 1..];
            let line = &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())];
            let after_header =
                line.trim_start_matches(|c: char| matches!(c, '1'..='9' | '+' | '-'));
            let header_ok = after_header.trim_start().is_empty()
                || (after_header.starts_with([' ', '\t'])
                    && after_header.trim_start().starts_with('#'));
            if header_ok && (!before.is_empty() || line_start == 0) {
                return content_start;
            }
        }
        self.text[..content_start]
            .rfind(['|', '>'])
            .unwrap_or(content_start)
    }

    /// Text for `key: value` (with nested missing keys) at indentation `indent`, starting with a
    /// newline.
    fn block_tail(
        &self,
        path: &[PathPart],
        value: &Value,
        indent: usize,
        nl: &str,
    ) -> Result<String, String> {
        let mut out = String::new();
        let mut ind = indent;
        for (i, part) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            match part {
                PathPart::Key(k) => {
                    out.push_str(nl);
                    out.push_str(&" ".repeat(ind));
                    out.push_str(&render(&Value::String(k.clone()), None, false));
                    out.push(':');
                    if last {
                        out.push_str(&render_block(value, ind, nl));
                    }
                    ind += 2;
                }
                PathPart::Index(_) => {
                    out.push_str(nl);
                    out.push_str(&" ".repeat(ind.saturating_sub(2)));
                    out.push_str("- ");
                    if last {
                        out.push_str(&render(value, None, false));
                    } else {
                        return Err(
                            "nested paths inside a new sequence item are not supported".into()
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    fn insert_into_map(
        &mut self,
        node: &Node,
        entries: &[(Node, Node)],
        flow: bool,
        key: &str,
        rest: &[PathPart],
        value: &Value,
    ) -> Result<(), String> {
        let nl = self.newline();
        if flow {
            let mut v = value.clone();
            for part in rest.iter().rev() {
                v = match part {
                    PathPart::Key(k) => serde_json::json!({ k.clone(): v }),
                    PathPart::Index(_) => Value::Array(vec![v]),
                };
            }
            let (close, sep) = self.flow_append_at(node, entries.is_empty());
            let text = format!(
                "{sep}{}: {}",
                render(&Value::String(key.to_owned()), None, true),
                render(&v, None, true)
            );
            self.insert(close, &text);
            return Ok(());
        }
        let Some((first_key, _)) = entries.first() else {
            return Err("cannot add a key to an empty block mapping".into());
        };
        // The mapping's indentation: its least indented key, an explicit `? key` counting at its
        // `?` (found by fuzzing: the new key joined a block scalar, and went under a lone
        // explicit key's text).
        let indent = entries
            .iter()
            .map(|(k, _)| self.explicit_key_col(k).unwrap_or(k.col))
            .min()
            .unwrap_or(first_key.col);
        let Some((last_k, last_v)) = entries.last() else {
            return Err("empty mapping".into());
        };
        let mut path = vec![PathPart::Key(key.to_owned())];
        path.extend_from_slice(rest);
        let text = self.block_tail(&path, value, indent, nl)?;
        self.insert_lines_after(last_v.end.max(last_k.end), &text, nl);
        Ok(())
    }

    /// Where an entry appended to the flow collection `node` goes, and what separates it from
    /// the last one: before the closing bracket, after `, ` unless the collection is empty or
    /// already ends in a comma (`{a: 1, }`; found by fuzzing: a second comma made it invalid).
    fn flow_append_at(&self, node: &Node, empty: bool) -> (usize, &'static str) {
        let close = node.end.saturating_sub(1);
        let b = self.text.as_bytes();
        let mut at = close.min(b.len());
        while at > node.start && matches!(b[at - 1], b' ' | b'\t' | b'\n' | b'\r') {
            at -= 1;
        }
        match () {
            _ if empty => (close, ""),
            _ if at > node.start && b[at - 1] == b',' => (at, " "),
            _ => (close, ", "),
        }
    }

    fn append_to_seq(
        &mut self,
        node: &Node,
        items: &[Node],
        flow: bool,
        rest: &[PathPart],
        value: &Value,
    ) -> Result<(), String> {
        let nl = self.newline();
        let mut v = value.clone();
        for part in rest.iter().rev() {
            v = match part {
                PathPart::Key(k) => serde_json::json!({ k.clone(): v }),
                PathPart::Index(_) => Value::Array(vec![v]),
            };
        }
        if flow {
            let (close, sep) = self.flow_append_at(node, items.is_empty());
            self.insert(close, &format!("{sep}{}", render(&v, None, true)));
            return Ok(());
        }
        let Some(last) = items.last() else {
            return Err("cannot append to an empty block sequence".into());
        };
        // The dash of the first item gives the indentation.
        let first = &items[0];
        let dash = self.text[..first.start].rfind('-').unwrap_or(first.start);
        let dash_col = dash - self.text[..dash].rfind('\n').map_or(0, |i| i + 1);
        let item = match &v {
            Value::Object(map) if !map.is_empty() => {
                let mut s = String::new();
                for (i, (k, val)) in map.iter().enumerate() {
                    if i == 0 {
                        s.push_str(&format!("{}- ", " ".repeat(dash_col)));
                    } else {
                        s.push_str(nl);
                        s.push_str(&" ".repeat(dash_col + 2));
                    }
                    s.push_str(&format!(
                        "{}: {}",
                        render(&Value::String(k.clone()), None, false),
                        render(val, None, false)
                    ));
                }
                s
            }
            other => format!("{}- {}", " ".repeat(dash_col), render(other, None, false)),
        };
        self.insert_lines_after(last.end, &format!("{nl}{item}"), nl);
        Ok(())
    }

    /// Insert `lines` (which start with a line break) after the node that ends at `end`. A
    /// block scalar's node ends at the start of the line after it (its line breaks, and under
    /// `|+` its trailing blank lines, are its content): the lines go there, before whatever
    /// follows, without a break of their own that would join the scalar. Any other node ends
    /// within its last line: the lines go at that line's end.
    fn insert_lines_after(&mut self, end: usize, lines: &str, nl: &str) {
        if end > 0 && self.text.as_bytes().get(end - 1) == Some(&b'\n') {
            let body = lines.strip_prefix(nl).unwrap_or(lines);
            self.insert(end, &format!("{body}{nl}"));
            return;
        }
        if self.line_end(end) == self.text.len() {
            // The last line of a file without a final line break: if it ends a block scalar,
            // the break that now follows would become part of its value.
            if let Some(at) = self.end_final_block_scalar() {
                let body = lines.strip_prefix(nl).unwrap_or(lines);
                self.insert(at, &format!("{body}{nl}"));
                return;
            }
        }
        let at = self.line_end(end.min(self.text.len()));
        self.insert(at, lines);
    }

    /// When the document's last scalar is a block scalar running to the end of a text without
    /// a final line break, keep its value once a line break follows. A scalar whose last line
    /// is content (no final break in its value) gets chomping `-` (strip). One whose last line
    /// is only blanks (`|`, ` ist:`, then a lone space) has its final break already, and a break
    /// after those blanks would add an empty line under `+` (keep): the new lines go before
    /// those blanks instead, and their position is returned.
    fn end_final_block_scalar(&mut self) -> Option<usize> {
        if self.text.ends_with(['\n', '\r']) {
            return None;
        }
        let offsets = Offsets::new(&self.text);
        let mut last = None;
        for event in Parser::new_from_str(&self.text) {
            let Ok((ev, span)) = event else { return None };
            if let Event::Scalar(_, style, _, _) = ev {
                let end = offsets.byte(&self.text, span.end.index());
                last = Some((style, offsets.byte(&self.text, span.start.index()), end));
            }
        }
        let Some((ScalarStyle::Literal | ScalarStyle::Folded, start, end)) = last else {
            return None;
        };
        if !self.text[end..].trim().is_empty() {
            // Something (a comment) follows the scalar's last line break.
            return None;
        }
        // Read from the text, not the parsed value: the parser reports `x\n` for `|` then `  x`
        // at the end of a file, where YAML (and serde_yaml) read `x`.
        let tail = self.text.rfind('\n').map_or(0, |i| i + 1);
        if tail > start && self.text[tail..].chars().all(|c| c == ' ' || c == '\t') {
            return Some(tail);
        }
        let indicator = self.block_indicator(start);
        let header_end = self.text[indicator + 1..]
            .find(|c: char| !matches!(c, '1'..='9' | '+' | '-'))
            .map_or(self.text.len(), |i| indicator + 1 + i);
        let header = &self.text[indicator + 1..header_end];
        if header.contains('-') {
            return None;
        }
        match header.find('+') {
            Some(i) => self.splice(indicator + 1 + i..indicator + 2 + i, "-"),
            None => self.insert(indicator + 1, "-"),
        }
        None
    }
}

/// A value placed after `key:` in block style: scalars and flow values inline, lists of
/// scalars or flat maps and flat maps as block collections (`- ` at the key's indentation, as
/// kustomization files usually have it).
fn render_block(value: &Value, indent: usize, nl: &str) -> String {
    let flat = |v: &Value| match v {
        Value::Object(m) => !m.is_empty() && m.values().all(|x| !x.is_object() && !x.is_array()),
        Value::Array(_) => false,
        _ => true,
    };
    let map_lines = |m: &Map<String, Value>, first_prefix: String, rest_indent: usize| {
        let mut s = String::new();
        for (i, (k, v)) in m.iter().enumerate() {
            if i == 0 {
                s.push_str(&first_prefix);
            } else {
                s.push_str(nl);
                s.push_str(&" ".repeat(rest_indent));
            }
            s.push_str(&format!(
                "{}: {}",
                render(&Value::String(k.clone()), None, false),
                render(v, None, false)
            ));
        }
        s
    };
    match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(flat) => {
            let mut s = String::new();
            for item in items {
                let prefix = format!("{nl}{}- ", " ".repeat(indent));
                match item {
                    Value::Object(m) => s.push_str(&map_lines(m, prefix, indent + 2)),
                    other => {
                        s.push_str(&prefix);
                        s.push_str(&render(other, None, false));
                    }
                }
            }
            s
        }
        Value::Object(m) if flat(value) => {
            map_lines(m, format!("{nl}{}", " ".repeat(indent + 2)), indent + 2)
        }
        other => format!(" {}", render(other, None, false)),
    }
}

fn scalar_is(node: &Node, key: &str) -> bool {
    matches!(&node.kind, Kind::Scalar { value, .. } if value == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(text: &str, key: &str, value: Value) -> String {
        let mut d = YamlDoc::parse(text).unwrap();
        d.set(&split_key(key), &value).unwrap();
        // The result must still parse, and read back the value.
        let back: serde_yaml::Value =
            serde_yaml::from_str(d.text()).unwrap_or_else(|e| panic!("{e}: {:?}", d.text()));
        let _ = back;
        d.text().to_owned()
    }

    #[test]
    fn split_key_follows_kargo() {
        use PathPart::*;
        assert_eq!(
            split_key("image.tag"),
            vec![Key("image".into()), Key("tag".into())]
        );
        assert_eq!(
            split_key(r"annotations.kargo\.akuity\.io/freight"),
            vec![
                Key("annotations".into()),
                Key("kargo.akuity.io/freight".into())
            ]
        );
        assert_eq!(
            split_key("images.0.tag"),
            vec![Key("images".into()), Index(0), Key("tag".into())]
        );
        assert_eq!(
            split_key("images.-1"),
            vec![Key("images".into()), Index(-1)]
        );
        assert_eq!(
            split_key("ports.:80"),
            vec![Key("ports".into()), Key("80".into())]
        );
    }

    #[test]
    fn empty_values_are_filled_in_where_the_value_goes() {
        assert_eq!(set("tag:\nb: 1\n", "tag", json!("v2")), "tag: v2\nb: 1\n");
        assert_eq!(set("tag :\nb: 1\n", "tag", json!("v2")), "tag : v2\nb: 1\n");
        assert_eq!(set("tag: # later\n", "tag", json!(1)), "tag: 1 # later\n");
        assert_eq!(set("-\n- b\n", "0", json!(1)), "- 1\n- b\n");
        assert_eq!(set("{a: , b: 1}\n", "a", json!(1)), "{a: 1 , b: 1}\n");
        assert_eq!(set("{a , b: 1}\n", "a", json!(1)), "{a : 1, b: 1}\n");
        // An explicit key with no `:` line at all gets one (found by fuzzing).
        assert_eq!(
            set("? &a k\nb: 1\n", "k", json!("v")),
            "? &a k\n: v\nb: 1\n"
        );
        assert_eq!(set("  ? k # c\n", "k", json!(1)), "  ? k # c\n  : 1\n");
        assert_eq!(set("? k\n: # c\n", "k", json!(1)), "? k\n: 1 # c\n");
    }

    #[test]
    fn an_explicit_key_on_the_line_below_its_question_mark() {
        // Found by fuzzing: an anchored empty key below its `?` got its value with no `: `.
        assert_eq!(
            set(" ?\r\n  &a\n\n", "", json!("tmic")),
            " ?\r\n  &a\r\n : tmic\n\n"
        );
        assert_eq!(set("?\n  k\nb: 1\n", "k", json!(1)), "?\n  k\n: 1\nb: 1\n");
        // Not explicit: the `?` has an empty key, and `k` is the next entry's.
        assert_eq!(set("?\nk:\n", "k", json!(1)), "?\nk: 1\n");
    }

    #[test]
    fn a_key_added_after_a_lone_explicit_key_goes_at_the_question_mark() {
        // Found by fuzzing: the new key was indented like the explicit key's text.
        assert_eq!(
            set(" ?  &a k\n", "name", json!("v")),
            " ?  &a k\n name: v\n"
        );
        // Also when the key's anchor stays on the `?`'s line and the key goes below it: the new
        // key went under the key's text, which made the document invalid.
        assert_eq!(
            set(" ?  &a\n\n  k\n", "name", json!("v")),
            " ?  &a\n\n  k\n name: v\n"
        );
        assert_eq!(set("? &a\n  k\n", "k", json!("v")), "? &a\n  k\n: v\n");
        // A lone `?` (an empty key) counts at its `?` too.
        assert_eq!(set(" ?\n\n", "name", json!("v")), " ?\n\n name: v\n");
    }

    #[test]
    fn an_empty_block_scalar_at_the_end_keeps_its_key() {
        // Found by fuzzing: the `|` in the key was taken for the block indicator.
        assert_eq!(set("k|k: |", "s", json!(3)), "k|k: |-\ns: 3");
        assert_eq!(set("a: 1\nk>k: >", "s", json!(3)), "a: 1\nk>k: >-\ns: 3");
        assert_eq!(set("k: |\n  >x", "s", json!(3)), "k: |-\n  >x\ns: 3");
    }

    #[test]
    fn flow_collections_end_at_their_bracket_not_the_spaces_after_it() {
        // Found by fuzzing: the parser's end event also spans the spaces after `}` and `]`.
        assert_eq!(
            set("{a: {b: } ,c: [1]}\n", "a.d", json!("v")),
            "{a: {b: , d: v} ,c: [1]}\n"
        );
        assert_eq!(
            set("{a: [1] ,c: 2}\n", "a.1", json!(2)),
            "{a: [1, 2] ,c: 2}\n"
        );
    }

    #[test]
    fn line_breaks_and_controls_are_escaped_in_keys_and_flow_values() {
        // Found by fuzzing: NEL (a line break to libyaml) stood raw in a new key of a flow
        // mapping, and serde_json left DEL raw inside a flow value.
        assert_eq!(
            set("{a: {x: 1}}\n", "a.b\u{85}c", json!("v")),
            "{a: {x: 1, \"b\\Nc\": v}}\n"
        );
        assert_eq!(
            set("a: 1\n", "a", json!({"k\u{7f}": ["\u{2028}"]})),
            "a: {\"k\\x7f\":[\"\\L\"]}\n"
        );
        assert_eq!(set("a: 'x'\n", "a", json!("p\u{2029}q")), "a: \"p\\Pq\"\n");
    }

    #[test]
    fn a_tagged_or_anchored_flow_collection_is_still_flow() {
        // Found by fuzzing: the collection's span starts at its tag, on the line before.
        assert_eq!(set("!t\n{a: 1}\n", "b", json!(2)), "!t\n{a: 1, b: 2}\n");
        assert_eq!(set("x: &y [1]\n", "x.1", json!(2)), "x: &y [1, 2]\n");
        assert_eq!(
            set("x: !<tag:a> {a: 1}\n", "x.b", json!(2)),
            "x: !<tag:a> {a: 1, b: 2}\n"
        );
        // An anchor or tag ends at a flow indicator: `&a{` anchors a flow mapping (YAML 1.2;
        // libyaml, and so serde_yaml, refuses it, so only our own parser reads the result).
        let mut d = YamlDoc::parse("&\"a&{a+, }").unwrap();
        d.set(&split_key(" "), &json!("i")).unwrap();
        assert_eq!(d.text(), "&\"a&{a+, \" \": i }");
        YamlDoc::parse(d.text()).unwrap();
        // A trailing comma gets no second one.
        assert_eq!(set("x: [1,]\n", "x.1", json!(2)), "x: [1, 2]\n");
        assert_eq!(set("{a: 1 , }\n", "b", json!(2)), "{a: 1 , b: 2 }\n");
    }

    #[test]
    fn a_block_collection_replaced_by_a_value_goes_whole() {
        assert_eq!(
            set(
                "image:\n  repo: x\n  b:\nz: 1\n",
                "image",
                json!({"tag": "v3"})
            ),
            "image:\n  {\"tag\":\"v3\"}\nz: 1\n"
        );
        assert_eq!(
            set("image:\n  - a\n  - b # last\nz: 1\n", "image", json!("x")),
            "image:\n  x\nz: 1\n"
        );
    }

    #[test]
    fn keys_added_after_a_block_scalar_leave_it_as_it_was() {
        // Nested: the new key goes before the next outer key, not after it (found by fuzzing:
        // the document broke).
        assert_eq!(
            set("m:\n  a: |\n    x\nz: 1\n", "m.c", json!(2)),
            "m:\n  a: |\n    x\n  c: 2\nz: 1\n"
        );
        assert_eq!(
            set("m:\n- |\n  x\nz: 1\n", "m.-1", json!(2)),
            "m:\n- |\n  x\n- 2\nz: 1\n"
        );
        // Kept trailing blank lines stay the scalar's.
        assert_eq!(set("a: |+\n  x\n\n", "b", json!(2)), "a: |+\n  x\n\nb: 2\n");
        // No final line break: the value has none, and keeps none once a key follows.
        assert_eq!(set("a: |\n  x", "c", json!(2)), "a: |-\n  x\nc: 2");
        assert_eq!(set("a: >+ # k\n  x", "c", json!(2)), "a: >- # k\n  x\nc: 2");
        assert_eq!(set("a: |2\n   x", "c", json!(2)), "a: |-2\n   x\nc: 2");
        // A comment after the scalar's line break: the key goes before it, nothing stripped.
        assert_eq!(set("a: |\n  x\n# c", "c", json!(2)), "a: |\n  x\nc: 2\n# c");
        // The final break is there, then only blanks (found by fuzzing: `|` became `|-`, the
        // value lost its break): the key goes before the blanks, the chomping stays.
        assert_eq!(set("a: |\n x\n ", "c", json!(2)), "a: |\n x\nc: 2\n ");
        assert_eq!(
            set("a: |+\n x\n\n  ", "c", json!(2)),
            "a: |+\n x\n\nc: 2\n  "
        );
    }

    #[test]
    fn only_the_scalar_changes() {
        let text = "# top comment\nimage:\n  repository: nginx   # the repo\n  tag: \"1.24.0\" # pinned\n\n  pullPolicy: IfNotPresent\nother: &anchor\n  x: 1\nref: *anchor\nblock: |\n  keep\n  me\n";
        let out = set(text, "image.tag", json!("1.25.0"));
        assert_eq!(out, text.replace("\"1.24.0\"", "\"1.25.0\""));
        let out = set(text, "image.repository", json!("ghcr.io/x/nginx"));
        assert_eq!(out, text.replace("nginx   #", "ghcr.io/x/nginx   #"));
    }

    #[test]
    fn quoting_styles_are_kept_and_plain_is_quoted_when_needed() {
        assert_eq!(set("a: 'x'\n", "a", json!("it's")), "a: 'it''s'\n");
        assert_eq!(set("a: x\n", "a", json!("1.25")), "a: \"1.25\"\n");
        assert_eq!(set("a: x\n", "a", json!("on")), "a: \"on\"\n");
        assert_eq!(set("a: x\n", "a", json!("v1.2.3")), "a: v1.2.3\n");
        assert_eq!(set("a: x\n", "a", json!("a: b")), "a: \"a: b\"\n");
        assert_eq!(set("a: x\n", "a", json!(3)), "a: 3\n");
        assert_eq!(set("a: x\n", "a", json!(true)), "a: true\n");
        assert_eq!(
            set("a: {b: c, d: e}\n", "a.b", json!("x,y")),
            "a: {b: \"x,y\", d: e}\n"
        );
    }

    #[test]
    fn crlf_is_kept() {
        let text = "a:\r\n  b: 1\r\n  c: 2\r\nz: 0\r\n";
        assert_eq!(
            set(text, "a.b", json!(5)),
            "a:\r\n  b: 5\r\n  c: 2\r\nz: 0\r\n"
        );
        assert_eq!(
            set(text, "a.d", json!("v")),
            "a:\r\n  b: 1\r\n  c: 2\r\n  d: v\r\nz: 0\r\n"
        );
        // YAML 1.1 booleans (y, n, on, off, ...) are quoted so no reader takes them for booleans.
        assert_eq!(
            set(text, "a.n", json!("y")),
            "a:\r\n  b: 1\r\n  c: 2\r\n  \"n\": \"y\"\r\nz: 0\r\n"
        );
    }

    #[test]
    fn missing_keys_are_created() {
        let text = "a:\n  b: 1 # c\nz: 0\n";
        assert_eq!(
            set(text, "a.x.w", json!("v")),
            "a:\n  b: 1 # c\n  x:\n    w: v\nz: 0\n"
        );
        assert_eq!(
            set(text, "new", json!("v")),
            "a:\n  b: 1 # c\nz: 0\nnew: v\n"
        );
        assert_eq!(set("", "a.b", json!(1)), "a:\n  b: 1\n");
        assert_eq!(set("a: {b: 1}\n", "a.c", json!(2)), "a: {b: 1, c: 2}\n");
    }

    #[test]
    fn sequences_index_and_append() {
        let text = "list:\n- a\n- b\nnext: 1\n";
        assert_eq!(
            set(text, "list.1", json!("c")),
            "list:\n- a\n- c\nnext: 1\n"
        );
        assert_eq!(
            set(text, "list.-1", json!("c")),
            "list:\n- a\n- b\n- c\nnext: 1\n"
        );
        assert_eq!(
            set(text, "list.9", json!("c")),
            "list:\n- a\n- b\n- c\nnext: 1\n"
        );
        let nested = "images:\n  - name: a\n    newTag: \"1\"\n";
        assert_eq!(
            set(nested, "images.0.newTag", json!("2")),
            "images:\n  - name: a\n    newTag: \"2\"\n"
        );
        assert_eq!(
            set(nested, "images.0.digest", json!("sha256:x")),
            "images:\n  - name: a\n    newTag: \"1\"\n    digest: sha256:x\n"
        );
        assert_eq!(
            set(nested, "images.-1", json!({"name": "b", "newTag": "2"})),
            "images:\n  - name: a\n    newTag: \"1\"\n  - name: b\n    newTag: \"2\"\n"
        );
        assert_eq!(set("l: [1, 2]\n", "l.-1", json!(3)), "l: [1, 2, 3]\n");
    }

    #[test]
    fn block_scalar_and_anchor_values() {
        assert_eq!(
            set("a: |\n  old\nb: 1\n", "a", json!("new")),
            "a: new\nb: 1\n"
        );
        assert_eq!(
            set("a: &x old\nb: *x\n", "a", json!("new")),
            "a: &x new\nb: *x\n"
        );
        let mut d = YamlDoc::parse("a: &x {k: v}\nb: *x\n").unwrap();
        assert!(d.set(&split_key("b.k"), &json!("z")).is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let mut d = YamlDoc::parse("a: 1\n").unwrap();
        let e = d.set(&split_key("a.b"), &json!(1)).unwrap_err().to_string();
        assert_eq!(
            e,
            "cannot update key \"a.b\": \"a\" is a scalar, not a mapping or sequence"
        );
        assert!(YamlDoc::parse("a: [\n").is_err());
    }

    #[test]
    fn remove_keys() {
        let mut d =
            YamlDoc::parse("images:\n- name: a\n  newTag: \"1\" # t\n  digest: sha256:x\nz: 1\n")
                .unwrap();
        assert!(d.remove(&split_key("images.0.newTag")).unwrap());
        assert_eq!(d.text(), "images:\n- name: a\n  digest: sha256:x\nz: 1\n");
        assert!(!d.remove(&split_key("images.0.missing")).unwrap());
        assert_eq!(d.get_str(&split_key("images.0.name")).as_deref(), Some("a"));
        assert_eq!(d.seq_len(&split_key("images")), 1);
    }
}
