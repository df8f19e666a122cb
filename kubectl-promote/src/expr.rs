//! `${{ }}` expressions in step configs, with Kargo's semantics
//! (`pkg/expressions/json_templates.go`): every string anywhere in a config is a template; text
//! outside delimiters is kept; each expression's result is written as a string (strings raw,
//! anything else as JSON); then the whole result is coerced: `"…"` → that string (so
//! `${{ quote(x) }}` keeps a number a string), else a number, else a boolean, else JSON, else the
//! string. Delimiters are `${{ }}` and `${% %}`.
//!
//! The language is the subset of expr-lang that promotion configs use: literals, `vars`, `ctx`,
//! `outputs`, `task`, member and index access (`a.b`, `a['b-c']`, `a?.b`), calls, `!`/`not`,
//! `+ - * /`, comparisons, `&&`/`and`, `||`/`or`, `??`, and `c ? a : b`. Functions: `quote`,
//! `unsafeQuote`, `asJSON`, `commitFrom`, `imageFrom`, `chartFrom`, `warehouse`, and in `if`:
//! `success()`, `failure()`, `always()`.

use serde_json::{Map, Value, json};

/// An expression failed to parse or evaluate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expression {expr:?}: {message}")]
pub struct ExprError {
    /// The expression text.
    pub expr: String,
    /// What went wrong.
    pub message: String,
}

/// Functions whose results depend on the promotion (freight lookups, step status).
pub trait Functions {
    /// `commitFrom(repoURL[, origin])`.
    fn commit_from(&self, repo: &str, origin: Option<&Value>) -> Result<Value, String>;
    /// `imageFrom(repoURL[, origin])`.
    fn image_from(&self, repo: &str, origin: Option<&Value>) -> Result<Value, String>;
    /// `chartFrom(repoURL[, name][, origin])`.
    fn chart_from(
        &self,
        repo: &str,
        name: Option<&str>,
        origin: Option<&Value>,
    ) -> Result<Value, String>;
    /// Whether every earlier step succeeded (for `success()` / `failure()`).
    fn all_succeeded(&self) -> bool {
        true
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    const OPS: [&str; 24] = [
        "??", "?.", "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", ".", ",", "!", "+",
        "-", "*", "/", "<", ">", "?", ":", "%",
    ];
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Tok::Num(
                s.parse().map_err(|_| format!("bad number {s:?}"))?,
            ));
        } else if c == '"' || c == '\'' || c == '`' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err("unterminated string".into());
                };
                i += 1;
                match ch {
                    ch if ch == quote => break,
                    '\\' if quote != '`' => {
                        let Some(&e) = chars.get(i) else {
                            return Err("unterminated string".into());
                        };
                        i += 1;
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                    }
                    ch => s.push(ch),
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| format!("unexpected character {c:?}"))?;
            i += op.chars().count();
            out.push(Tok::Op(op));
        }
    }
    Ok(out)
}

#[derive(Debug)]
enum Ast {
    Lit(Value),
    Ident(String),
    Member(Box<Ast>, Box<Ast>, bool),
    Call(String, Vec<Ast>),
    /// `value.name(args)`: a method of a value (`response.header("X")` in `http`).
    Method(Box<Ast>, String, Vec<Ast>),
    Unary(&'static str, Box<Ast>),
    Binary(&'static str, Box<Ast>, Box<Ast>),
    Cond(Box<Ast>, Box<Ast>, Box<Ast>),
}

struct P {
    toks: Vec<Tok>,
    pos: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(format!("expected {op:?}"))
        }
    }

    fn binary_op(&self) -> Option<(&'static str, u8)> {
        match self.peek()? {
            Tok::Op("??") => Some(("??", 1)),
            Tok::Op("||") => Some(("||", 2)),
            Tok::Ident(w) if w == "or" => Some(("||", 2)),
            Tok::Op("&&") => Some(("&&", 3)),
            Tok::Ident(w) if w == "and" => Some(("&&", 3)),
            Tok::Op(o @ ("==" | "!=" | "<" | ">" | "<=" | ">=")) => Some((o, 4)),
            Tok::Op(o @ ("+" | "-")) => Some((o, 5)),
            Tok::Op(o @ ("*" | "/" | "%")) => Some((o, 6)),
            _ => None,
        }
    }

    fn expr(&mut self, min: u8) -> Result<Ast, String> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binary_op() {
            if prec < min {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(prec + 1)?;
            lhs = Ast::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        if min == 0 && self.eat("?") {
            let a = self.expr(0)?;
            self.expect(":")?;
            let b = self.expr(0)?;
            lhs = Ast::Cond(Box::new(lhs), Box::new(a), Box::new(b));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Ast, String> {
        if self.eat("!") {
            return Ok(Ast::Unary("!", Box::new(self.unary()?)));
        }
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == "not") {
            self.pos += 1;
            return Ok(Ast::Unary("!", Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Ast::Unary("-", Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Ast, String> {
        let mut node = match self.next().ok_or("unexpected end of expression")? {
            Tok::Num(n) => Ast::Lit(num(n)),
            Tok::Str(s) => Ast::Lit(Value::String(s)),
            Tok::Ident(w) => match w.as_str() {
                "true" => Ast::Lit(Value::Bool(true)),
                "false" => Ast::Lit(Value::Bool(false)),
                "nil" => Ast::Lit(Value::Null),
                _ if self.eat("(") => {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.expr(0)?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    Ast::Call(w, args)
                }
                _ => Ast::Ident(w),
            },
            Tok::Op("(") => {
                let e = self.expr(0)?;
                self.expect(")")?;
                e
            }
            Tok::Op(o) => return Err(format!("unexpected {o:?}")),
        };
        loop {
            let optional = if self.eat("?.") {
                true
            } else if self.eat(".") {
                false
            } else if self.eat("[") {
                let idx = self.expr(0)?;
                self.expect("]")?;
                node = Ast::Member(Box::new(node), Box::new(idx), false);
                continue;
            } else {
                break;
            };
            match self.next() {
                Some(Tok::Ident(name)) if self.eat("(") => {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.expr(0)?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    node = Ast::Method(Box::new(node), name, args);
                }
                Some(Tok::Ident(name)) => {
                    node = Ast::Member(
                        Box::new(node),
                        Box::new(Ast::Lit(Value::String(name))),
                        optional,
                    )
                }
                _ => return Err("expected a field name after '.'".into()),
            }
        }
        Ok(node)
    }
}

fn num(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => true,
    }
}

fn as_str<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{what} must be a string, got {v}"))
}

/// JSON as Go's `encoding/json` writes it: map keys sorted.
fn go_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

/// Go's `%q` for the strings expressions produce.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

struct Eval<'a> {
    env: &'a Map<String, Value>,
    funcs: &'a dyn Functions,
}

impl Eval<'_> {
    fn eval(&self, ast: &Ast) -> Result<Value, String> {
        Ok(match ast {
            Ast::Lit(v) => v.clone(),
            Ast::Ident(name) => self
                .env
                .get(name)
                .cloned()
                .ok_or_else(|| format!("unknown name {name:?}"))?,
            Ast::Member(obj, key, optional) => {
                let o = self.eval(obj)?;
                let k = self.eval(key)?;
                match (&o, &k) {
                    (Value::Null, _) if *optional => Value::Null,
                    (Value::Null, Value::String(k)) => {
                        return Err(format!("cannot fetch {k:?} from nil"));
                    }
                    (Value::Object(m), Value::String(k)) => {
                        m.get(k).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_i64().ok_or("index must be an integer")?;
                        let i = if i < 0 { a.len() as i64 + i } else { i };
                        a.get(usize::try_from(i).map_err(|_| "index out of range")?)
                            .cloned()
                            .ok_or("index out of range")?
                    }
                    (o, k) => return Err(format!("cannot index {} with {k}", type_name(o))),
                }
            }
            Ast::Unary("!", e) => Value::Bool(!truthy(&self.eval(e)?)),
            Ast::Unary(_, e) => match self.eval(e)?.as_f64() {
                Some(n) => num(-n),
                None => return Err("'-' needs a number".into()),
            },
            Ast::Binary(op, a, b) => self.binary(op, a, b)?,
            Ast::Cond(c, a, b) => {
                if truthy(&self.eval(c)?) {
                    self.eval(a)?
                } else {
                    self.eval(b)?
                }
            }
            Ast::Call(name, args) => self.call(name, args)?,
            Ast::Method(base, name, args) => self.method(base, name, args)?,
        })
    }

    fn binary(&self, op: &str, a: &Ast, b: &Ast) -> Result<Value, String> {
        match op {
            "&&" => {
                return Ok(Value::Bool(
                    truthy(&self.eval(a)?) && truthy(&self.eval(b)?),
                ));
            }
            "||" => {
                return Ok(Value::Bool(
                    truthy(&self.eval(a)?) || truthy(&self.eval(b)?),
                ));
            }
            "??" => {
                let l = self.eval(a)?;
                return if l.is_null() { self.eval(b) } else { Ok(l) };
            }
            _ => {}
        }
        let (l, r) = (self.eval(a)?, self.eval(b)?);
        Ok(match (op, &l, &r) {
            ("==", ..) => Value::Bool(loose_eq(&l, &r)),
            ("!=", ..) => Value::Bool(!loose_eq(&l, &r)),
            ("+", Value::String(x), Value::String(y)) => Value::String(format!("{x}{y}")),
            (_, Value::Number(_), Value::Number(_)) => {
                let (x, y) = (
                    l.as_f64().unwrap_or_default(),
                    r.as_f64().unwrap_or_default(),
                );
                match op {
                    "+" => num(x + y),
                    "-" => num(x - y),
                    "*" => num(x * y),
                    "/" => num(x / y),
                    "%" => num(x % y),
                    "<" => Value::Bool(x < y),
                    ">" => Value::Bool(x > y),
                    "<=" => Value::Bool(x <= y),
                    ">=" => Value::Bool(x >= y),
                    _ => return Err(format!("unsupported operator {op}")),
                }
            }
            (_, Value::String(x), Value::String(y)) => match op {
                "<" => Value::Bool(x < y),
                ">" => Value::Bool(x > y),
                "<=" => Value::Bool(x <= y),
                ">=" => Value::Bool(x >= y),
                _ => return Err(format!("operator {op} does not apply to strings")),
            },
            _ => {
                return Err(format!(
                    "operator {op} does not apply to {} and {}",
                    type_name(&l),
                    type_name(&r)
                ));
            }
        })
    }

    /// Methods of values: `header(name)` of an HTTP response (its `headers`, by name in any
    /// case; `""` when absent, as Go's `Header.Get`).
    fn method(&self, base: &Ast, name: &str, args: &[Ast]) -> Result<Value, String> {
        let base = self.eval(base)?;
        match name {
            "header" => {
                let wanted = match args.first().map(|a| self.eval(a)).transpose()? {
                    Some(Value::String(s)) => s.to_lowercase(),
                    _ => return Err("header() needs a header name".into()),
                };
                let found = base
                    .get("headers")
                    .and_then(Value::as_object)
                    .and_then(|h| h.iter().find(|(k, _)| k.to_lowercase() == wanted))
                    .and_then(|(_, v)| match v {
                        Value::Array(a) => a.first().cloned(),
                        other => Some(other.clone()),
                    });
                Ok(found.unwrap_or_else(|| Value::String(String::new())))
            }
            other => Err(format!("unknown method {other}()")),
        }
    }

    fn call(&self, name: &str, args: &[Ast]) -> Result<Value, String> {
        let vals: Vec<Value> = args
            .iter()
            .map(|a| self.eval(a))
            .collect::<Result<_, _>>()?;
        let arg = |i: usize| {
            vals.get(i)
                .ok_or_else(|| format!("{name}() needs at least {} argument(s)", i + 1))
        };
        Ok(match name {
            "quote" => match arg(0)? {
                Value::String(s) => Value::String(go_quote(s)),
                other => Value::String(format!("\"{}\"", go_json(other))),
            },
            "unsafeQuote" => Value::String(format!("\"{}\"", go_json(arg(0)?))),
            "asJSON" => Value::String(format!(
                "\"{}\n\"",
                serde_json::to_string_pretty(arg(0)?).unwrap_or_default()
            )),
            "warehouse" => {
                json!({ "kind": "Warehouse", "name": as_str(arg(0)?, "warehouse()'s argument")? })
            }
            "commitFrom" => self
                .funcs
                .commit_from(as_str(arg(0)?, "commitFrom()'s repoURL")?, vals.get(1))?,
            "imageFrom" => self
                .funcs
                .image_from(as_str(arg(0)?, "imageFrom()'s repoURL")?, vals.get(1))?,
            "chartFrom" => {
                let repo = as_str(arg(0)?, "chartFrom()'s repoURL")?;
                match vals.get(1) {
                    Some(Value::String(n)) => self.funcs.chart_from(repo, Some(n), vals.get(2))?,
                    other => self.funcs.chart_from(repo, None, other)?,
                }
            }
            "success" => Value::Bool(self.funcs.all_succeeded()),
            "failure" => Value::Bool(!self.funcs.all_succeeded()),
            "always" => Value::Bool(true),
            "len" => json!(match arg(0)? {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                _ => 0,
            }),
            "lower" => Value::String(as_str(arg(0)?, "lower()'s argument")?.to_lowercase()),
            "upper" => Value::String(as_str(arg(0)?, "upper()'s argument")?.to_uppercase()),
            "trim" => Value::String(as_str(arg(0)?, "trim()'s argument")?.trim().to_owned()),
            other => return Err(format!("unknown function {other}()")),
        })
    }
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "map",
    }
}

/// Evaluate one expression (no delimiters) to a value.
pub fn eval_expr(
    src: &str,
    env: &Map<String, Value>,
    funcs: &dyn Functions,
) -> Result<Value, ExprError> {
    let fail = |message: String| ExprError {
        expr: src.trim().to_owned(),
        message,
    };
    let toks = lex(src).map_err(fail)?;
    let mut p = P { toks, pos: 0 };
    let ast = p.expr(0).map_err(fail)?;
    if p.pos < p.toks.len() {
        return Err(fail(format!(
            "unexpected {:?} after the expression",
            p.toks[p.pos]
        )));
    }
    Eval { env, funcs }.eval(&ast).map_err(fail)
}

const DELIMS: [(&str, &str); 2] = [("${{", "}}"), ("${%", "%}")];

/// Whether a string contains an expression.
pub fn has_expression(s: &str) -> bool {
    DELIMS.iter().any(|(start, _)| s.contains(start))
}

/// Evaluate a template string with Kargo's coercion of the result.
pub fn eval_template(
    template: &str,
    env: &Map<String, Value>,
    funcs: &dyn Functions,
) -> Result<Value, ExprError> {
    if !has_expression(template) {
        return Ok(Value::String(template.to_owned()));
    }
    let mut out = String::new();
    let mut rest = template;
    loop {
        let next = DELIMS
            .iter()
            .filter_map(|(s, e)| rest.find(s).map(|i| (i, *s, *e)))
            .min_by_key(|(i, ..)| *i);
        let Some((i, start, end)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..i]);
        let body_start = i + start.len();
        let Some(j) = rest[body_start..].find(end) else {
            return Err(ExprError {
                expr: template.to_owned(),
                message: format!(
                    "unclosed expression: expected {end:?} but reached end of template"
                ),
            });
        };
        let v = eval_expr(&rest[body_start..body_start + j], env, funcs)?;
        match v {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&go_json(&other)),
        }
        rest = &rest[body_start + j + end.len()..];
    }
    Ok(coerce(out))
}

/// Kargo's coercion of a rendered template.
fn coerce(result: String) -> Value {
    let (body, had_newline) = match result.strip_suffix('\n') {
        Some(b) => (b.to_owned(), true),
        None => (result.clone(), false),
    };
    if body.len() > 1 && body.starts_with('"') && body.ends_with('"') {
        let mut s = body[1..body.len() - 1].to_owned();
        if had_newline {
            s.push('\n');
        }
        return Value::String(s);
    }
    if let Some(n) = parse_go_float(&body) {
        return num(n);
    }
    match body.as_str() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => return Value::Bool(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(v) = serde_json::from_str::<Value>(&body) {
        return v;
    }
    Value::String(result)
}

/// `strconv.ParseFloat` for the forms that matter (decimal, exponent); Go also accepts inf/nan
/// and hex floats, which never appear as image tags or revisions.
fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    if t.is_empty()
        || !t.bytes().all(|b| {
            b.is_ascii_digit()
                || b == b'.'
                || b == b'e'
                || b == b'E'
                || b == b'+'
                || b == b'-'
                || b == b'_'
        })
    {
        return None;
    }
    if t.contains('_') {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Evaluate every string in a JSON value (a step config) as a template.
pub fn eval_value(
    v: &Value,
    env: &Map<String, Value>,
    funcs: &dyn Functions,
) -> Result<Value, ExprError> {
    Ok(match v {
        Value::String(s) => eval_template(s, env, funcs)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| eval_value(x, env, funcs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), eval_value(x, env, funcs)?)))
                .collect::<Result<_, ExprError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct F;
    impl Functions for F {
        fn commit_from(&self, repo: &str, _: Option<&Value>) -> Result<Value, String> {
            Ok(json!({ "RepoURL": repo, "ID": "abc123", "Tag": "v1" }))
        }
        fn image_from(&self, repo: &str, _: Option<&Value>) -> Result<Value, String> {
            if repo == "missing" {
                return Ok(Value::Null);
            }
            Ok(json!({ "RepoURL": repo, "Tag": "1.25", "Digest": "sha256:d" }))
        }
        fn chart_from(
            &self,
            repo: &str,
            name: Option<&str>,
            _: Option<&Value>,
        ) -> Result<Value, String> {
            Ok(json!({ "RepoURL": repo, "Name": name, "Version": "2.0.0" }))
        }
    }

    fn env() -> Map<String, Value> {
        json!({
            "vars": { "repo": "https://github.com/x/y", "n": 3 },
            "ctx": { "stage": "test", "project": "demo", "targetFreight": { "name": "abc", "origin": { "name": "w" } } },
            "outputs": { "update-image": { "commitMessage": "msg" }, "commit": { "commit": "deadbeef" } }
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn t(s: &str) -> Value {
        eval_template(s, &env(), &F).unwrap()
    }

    #[test]
    fn templates_and_coercion() {
        assert_eq!(t("plain"), json!("plain"));
        assert_eq!(t("${{ vars.repo }}"), json!("https://github.com/x/y"));
        assert_eq!(t("stage/${{ ctx.stage }}"), json!("stage/test"));
        assert_eq!(
            t("${{ outputs['update-image'].commitMessage }}"),
            json!("msg")
        );
        assert_eq!(t("${{ outputs.commit.commit }}"), json!("deadbeef"));
        // Kargo's coercion: a tag like 1.25 becomes a number unless quoted.
        assert_eq!(t("${{ imageFrom('nginx').Tag }}"), json!(1.25));
        assert_eq!(t("${{ quote(imageFrom('nginx').Tag) }}"), json!("1.25"));
        assert_eq!(t("${{ vars.n }}"), json!(3));
        assert_eq!(t("${{ vars.n > 2 }}"), json!(true));
        assert_eq!(t("${{ commitFrom(vars.repo).ID }}"), json!("abc123"));
        assert_eq!(
            t("${{ chartFrom('oci://x', 'c').Version }}"),
            json!("2.0.0")
        );
        assert_eq!(t("${% ctx.project %}-${{ ctx.stage }}"), json!("demo-test"));
        assert_eq!(
            t("${{ imageFrom('missing')?.Tag ?? 'none' }}"),
            json!("none")
        );
        assert_eq!(t("${{ ctx.stage == 'test' ? 'yes' : 'no' }}"), json!("yes"));
        assert_eq!(t("${{ 'a' + ctx.stage }}"), json!("atest"));
        assert_eq!(t("${{ !success() || always() }}"), json!(true));
        assert_eq!(t("${{ quote(3) }}"), json!("3"));
        assert_eq!(
            t("x: ${{ vars }}"),
            json!("x: {\"n\":3,\"repo\":\"https://github.com/x/y\"}")
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = eval_template("${{ nope.x }}", &env(), &F).unwrap_err();
        assert_eq!(e.message, "unknown name \"nope\"");
        let e = eval_template("${{ ctx.stage", &env(), &F).unwrap_err();
        assert!(e.message.contains("unclosed expression"), "{e}");
        assert!(eval_template("${{ ctx..stage }}", &env(), &F).is_err());
        assert!(eval_template("${{ imageFrom('missing').Tag }}", &env(), &F).is_err());
        assert!(eval_template("${{ unknownFn() }}", &env(), &F).is_err());
    }

    #[test]
    fn whole_configs() {
        let cfg = json!({ "path": "./src/${{ ctx.stage }}", "images": [{ "image": "nginx", "tag": "${{ quote(imageFrom('nginx').Tag) }}" }], "n": 1 });
        assert_eq!(
            eval_value(&cfg, &env(), &F).unwrap(),
            json!({ "path": "./src/test", "images": [{ "image": "nginx", "tag": "1.25" }], "n": 1 })
        );
    }
}
