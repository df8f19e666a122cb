//! `toml-update` on large files without a document tree: toml_edit's tree costs about 27 times
//! the file (a 100 MB file took 2.8 GB), so beyond [`STREAM_ABOVE`] bytes the file is lexed
//! (toml_parser, the lexer toml_edit itself uses) one top-level expression at a time, the one
//! expression that holds the key is found, and only that expression's text goes through
//! toml_edit. Memory then follows the file plus its largest expression.
//!
//! What the stream cannot check: rules that need the whole document (a key defined twice, a table
//! reopened). Syntax errors are still found, by toml_parser's parser run on each expression.

use toml_parser::lexer::{Token, TokenKind};
use toml_parser::parser::{EventReceiver, parse_document};
use toml_parser::{ParseError, Raw, Source};

/// Files larger than this are edited by the stream.
pub(super) const STREAM_ABOVE: usize = 4 * 1024 * 1024;

/// Where a key's value is written: the text of the top-level expression that holds it, and the
/// path of the key within that expression (its own dotted keys, then the rest of the key into
/// inline tables and arrays).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Found {
    pub range: std::ops::Range<usize>,
    pub local: Vec<String>,
}

/// Why the key was not found, in the words the tree-based edit uses.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Missing {
    /// No expression or table holds the key.
    NotFound,
    /// The key names a table.
    Table,
    /// The document is not TOML.
    Invalid(String),
}

/// The line and column of byte `at`, for errors.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// Decode a key token (bare or quoted).
fn key(text: &str, t: &Token) -> Result<String, String> {
    let span = t.span();
    let raw = Raw::new_unchecked(&text[span.start()..span.end()], t.kind().encoding(), span);
    let mut out = String::new();
    let mut err: Option<ParseError> = None;
    raw.decode_key(&mut out, &mut err);
    match err {
        Some(e) => Err(e.description().to_owned()),
        None => Ok(out),
    }
}

/// The keys of `tokens` (a header's or an expression's, dots and whitespace between them).
fn keys(text: &str, tokens: &[Token]) -> Result<Vec<String>, String> {
    tokens
        .iter()
        .filter(|t| {
            !matches!(
                t.kind(),
                TokenKind::Dot | TokenKind::Whitespace | TokenKind::LeftSquareBracket
            )
        })
        .map(|t| key(text, t))
        .collect()
}

/// Syntax errors of one expression (a complete line or lines of the document).
struct NoEvents;
impl EventReceiver for NoEvents {}

/// Find the expression that holds `path` in `text`.
pub(super) fn locate(text: &str, path: &[String]) -> Result<Found, Missing> {
    let source = Source::new(text);
    // The concrete path of the current table (arrays of tables with their index) and the number
    // of tables each array of tables has so far.
    let mut table: Vec<String> = Vec::new();
    // Which parts of `table` are indexes into arrays of tables.
    let mut index: Vec<bool> = Vec::new();
    // Whether the key names a table (or array of tables' element) that this path leads to:
    // a key ending just before an index names the array itself, which the tree reports as
    // not found.
    let names = |full: &[String], index: &[bool]| {
        full.len() >= path.len()
            && full.starts_with(path)
            && !index.get(path.len()).copied().unwrap_or(false)
    };
    let mut arrays: std::collections::HashMap<Vec<String>, usize> = Default::default();
    let mut names_a_table = false;
    let mut found: Option<Found> = None;
    let mut chunk: Vec<Token> = Vec::new();
    let mut depth = 0usize;
    let invalid = |at: usize, what: &str| {
        let (line, col) = position(text, at);
        Missing::Invalid(format!(
            "TOML parse error at line {line}, column {col}: {what}"
        ))
    };
    for t in source.lex() {
        let kind = t.kind();
        match kind {
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                depth = depth.saturating_sub(1)
            }
            _ => {}
        }
        let end_of_expression = matches!(kind, TokenKind::Newline | TokenKind::Eof) && depth == 0;
        if kind != TokenKind::Eof {
            chunk.push(t);
        }
        if !end_of_expression {
            continue;
        }
        let mut errors: Option<ParseError> = None;
        parse_document(&chunk, &mut NoEvents, &mut errors);
        if let Some(e) = errors {
            let at = e
                .unexpected()
                .map_or(chunk.first().map_or(0, |t| t.span().start()), |s| s.start());
            return Err(invalid(at, e.description()));
        }
        let significant: Vec<&Token> = chunk
            .iter()
            .filter(|t| {
                !matches!(
                    t.kind(),
                    TokenKind::Whitespace | TokenKind::Newline | TokenKind::Comment
                )
            })
            .collect();
        if let Some(first) = significant.first() {
            let at = first.span().start();
            if first.kind() == TokenKind::LeftSquareBracket {
                // A table header: `[a.b]` or `[[a.b]]`.
                let array = significant
                    .get(1)
                    .is_some_and(|t| t.kind() == TokenKind::LeftSquareBracket);
                let inner: Vec<Token> = chunk
                    .iter()
                    .copied()
                    .skip_while(|t| t.kind() != TokenKind::LeftSquareBracket)
                    .take_while(|t| t.kind() != TokenKind::RightSquareBracket)
                    .collect();
                let header = keys(text, &inner).map_err(|e| invalid(at, &e))?;
                table.clear();
                index.clear();
                for (i, name) in header.iter().enumerate() {
                    table.push(name.clone());
                    index.push(false);
                    let last = i + 1 == header.len();
                    if last && array {
                        let n = arrays.entry(table.clone()).or_insert(0);
                        *n += 1;
                        table.push((*n - 1).to_string());
                        index.push(true);
                    } else if let Some(n) = arrays.get(&table) {
                        table.push(n.saturating_sub(1).to_string());
                        index.push(true);
                    }
                }
                names_a_table |= names(&table, &index);
            } else {
                // `key.path = value`
                let eq = chunk
                    .iter()
                    .position(|t| t.kind() == TokenKind::Equals)
                    .ok_or_else(|| invalid(at, "expected `=`"))?;
                let own = keys(text, &chunk[..eq]).map_err(|e| invalid(at, &e))?;
                let mut full = table.clone();
                full.extend(own.iter().cloned());
                if found.is_none() && path.starts_with(&full) {
                    let end = significant.last().map_or(at, |t| t.span().end());
                    let mut local = own;
                    local.extend(path[full.len()..].iter().cloned());
                    found = Some(Found {
                        range: at..end,
                        local,
                    });
                }
                let mut full_index = index.clone();
                full_index.resize(full.len(), false);
                names_a_table |= names(&full, &full_index);
            }
        }
        chunk.clear();
    }
    // The whole file was read, so that a syntax error after the key is found too.
    match found {
        Some(f) => Ok(f),
        None if names_a_table => Err(Missing::Table),
        None => Err(Missing::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, key: &str) -> Result<(String, Vec<String>), Missing> {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        locate(text, &path).map(|f| (text[f.range].to_owned(), f.local))
    }

    fn ok(text: &str, key: &str) -> (String, String) {
        let (expr, local) = at(text, key).unwrap();
        (expr, local.join("."))
    }

    #[test]
    fn finds_the_expression_that_holds_a_key() {
        let doc = "# top\ntitle = \"x\" # c\n[a]\nb.c = 1\nd = { e = [1, {f = 2}] }\n\n[[srv]]\nhost = \"h0\"\n[[srv]]\nhost = \"h1\"\n[srv.tls]\non = true\nm = [\n  1,\n  2,\n]\n\"q.k\" = 'v'\n";
        assert_eq!(ok(doc, "title"), ("title = \"x\"".into(), "title".into()));
        assert_eq!(ok(doc, "a.b.c"), ("b.c = 1".into(), "b.c".into()));
        assert_eq!(
            ok(doc, "a.d.e.1.f"),
            ("d = { e = [1, {f = 2}] }".into(), "d.e.1.f".into())
        );
        assert_eq!(
            ok(doc, "srv.1.host"),
            ("host = \"h1\"".into(), "host".into())
        );
        assert_eq!(
            ok(doc, "srv.0.host"),
            ("host = \"h0\"".into(), "host".into())
        );
        assert_eq!(ok(doc, "srv.1.tls.on"), ("on = true".into(), "on".into()));
        assert_eq!(
            ok(doc, "srv.1.tls.m"),
            ("m = [\n  1,\n  2,\n]".into(), "m".into())
        );
        let quoted = locate(doc, &["srv".into(), "1".into(), "tls".into(), "q.k".into()]).unwrap();
        assert_eq!(&doc[quoted.range], "\"q.k\" = 'v'");
        assert_eq!(at(doc, "a"), Err(Missing::Table));
        assert_eq!(at(doc, "srv.1.tls"), Err(Missing::Table));
        assert_eq!(at(doc, "a.b"), Err(Missing::Table));
        assert_eq!(at(doc, "nope"), Err(Missing::NotFound));
        assert_eq!(at(doc, "a.x"), Err(Missing::NotFound));
    }

    #[test]
    fn syntax_errors_are_found_with_their_line() {
        let Err(Missing::Invalid(e)) = at("a = 1\nb = = 2\n", "a") else {
            panic!("invalid TOML accepted")
        };
        assert!(e.contains("line 2"), "{e}");
    }
}
