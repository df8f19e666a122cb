//! A fast reader of AdmissionReview bodies.
//!
//! Most of a review's bytes are parts no decision reads: an Application's `status` (its resources,
//! history and conditions) and `metadata.managedFields`, twice (object and oldObject). Building
//! values for them is what made parsing expensive, and even skipping them token by token with
//! `serde_json` costs about 0.5 ns per byte. This module reads a review in two steps. [`review`]
//! walks the envelope and the request key by key and each object's top-level keys, noting its
//! `operation` and `metadata` (what `admission::settled` needs) while skipping the values;
//! [`slim_object`], when a decision needs an object, walks it again, handing every value a
//! decision reads to `serde_json` (fully validated). Everything else is jumped over with
//! [`skip_container`], which
//! finds the end of an object or array 64 bytes at a time with SIMD compares (the `wide` crate:
//! safe code, SSE2 on every x86-64): one mask of quotes, backslashes, openers and closers per
//! block, string interiors removed by a prefix XOR of the unescaped quotes, then bracket depth
//! counted with popcounts.
//!
//! What is skipped is checked only structurally (strings terminated, brackets balanced outside
//! strings), as simdjson's on-demand API does; the API server serializes these bodies itself.
//! Anything this reader does not understand makes it return `None`, and [`super::parse_review`]
//! then parses the body with `serde_json` alone, so a gap here can cost time, never a wrong answer.

use std::borrow::Cow;

use serde_json::Value;
use wide::u8x16;

use promote_api::argocd::promotion_in_info;
use promote_api::keys::{ARGOCD_REFRESH, AUTHORIZED_STAGE, LOCKDOWN, PROJECT_INFO, PROMOTION_INFO};

use super::view::{
    Annotations, AppView, OperationState, OperationView, RawJson, UNGUARDED_ANNOTATIONS,
};
use super::{Gvk, Operation, Request, UserInfo};

/// An object key: its bytes, valid UTF-8 (see [`Cursor::key`]).
type Key<'a> = Cow<'a, [u8]>;

/// The reader's position in a body. Every method returns `None` on input it does not accept.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(*c);
            }
            self.i += 1;
        }
        None
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// The contents of a string at the cursor when they are printable ASCII without escapes (most
    /// keys and short values, found 8 bytes at a time by [`plain_len`]), which are consumed;
    /// `None`, leaving the cursor where it was, for any other value.
    // Always inlined: called apart, it cost 1.4% more instructions per promotion review (118,892
    // against 117,242, bench/instructions.sh).
    #[inline(always)]
    fn plain(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let n = plain_len(self.b.get(start..)?)?;
        self.i = start + n + 1;
        self.b.get(start..start + n)
    }

    /// A JSON string at the cursor, unescaped (borrowed when it has no escapes).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if let Some(plain) = self.plain() {
            return std::str::from_utf8(plain).ok().map(Cow::Borrowed);
        }
        self.eat(b'"')?;
        let start = self.i;
        let end = string_end(self.b, start)?;
        self.i = end + 1;
        let inner = self.b.get(start..end)?;
        if inner.contains(&b'\\') {
            let quoted = self.b.get(start - 1..=end)?;
            serde_json::from_slice::<String>(quoted)
                .ok()
                .map(Cow::Owned)
        } else {
            // serde_json rejects control characters in strings; so do we.
            if inner.iter().any(|c| *c < 0x20) {
                return None;
            }
            std::str::from_utf8(inner).ok().map(Cow::Borrowed)
        }
    }

    /// The raw text of the value at the cursor, which is skipped.
    fn value(&mut self) -> Option<&'a [u8]> {
        let first = self.peek()?;
        let start = self.i;
        let end = match first {
            b'"' => string_end(self.b, start + 1)? + 1,
            b'{' | b'[' => skip_container(self.b, start)?,
            _ => {
                // A number, true, false or null: up to the next delimiter, validated by serde_json
                // by whoever reads it (skipped scalars are checked here, they are short).
                let len = self.b[start..]
                    .iter()
                    .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(self.b.len() - start);
                let token = &self.b[start..start + len];
                serde_json::from_slice::<serde::de::IgnoredAny>(token).ok()?;
                start + len
            }
        };
        self.i = end;
        self.b.get(start..end)
    }

    /// An object key at the cursor, unescaped, as bytes (valid UTF-8). Most keys are short
    /// printable ASCII without escapes: those are borrowed as they are, with no UTF-8 check to
    /// run (at about 100 instructions per call, `str::from_utf8` on the dozens of keys of a
    /// review cost more than the rest of reading them).
    fn key(&mut self) -> Option<Key<'a>> {
        if let Some(plain) = self.plain() {
            return Some(Cow::Borrowed(plain));
        }
        Some(match self.string()? {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        })
    }

    /// Read an object: `f` is called with each key and must consume its value.
    fn object(&mut self, mut f: impl FnMut(&mut Self, Key<'a>) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            f(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The value at the cursor, parsed by serde_json.
    fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        serde_json::from_slice(self.value()?).ok()
    }

    /// The value at the cursor when it is a string (parsed by serde_json; any other value is
    /// checked and read as `None`).
    fn string_value(&mut self) -> Option<Option<String>> {
        Some(self.str_value()?.map(Cow::into_owned))
    }

    /// The value at the cursor when it is a string, borrowed when it has no escapes (any other
    /// value is checked and read as `None`).
    fn str_value(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'"' {
            return self.string().map(Some);
        }
        self.parse::<serde::de::IgnoredAny>()?;
        Some(None)
    }

    /// The value at the cursor as text, `None` for `null`. Like every skipped value it is checked
    /// structurally only (see [`RawJson`] for why that is enough).
    fn raw_json(&mut self) -> Option<Option<RawJson>> {
        if self.is_null()? {
            return Some(None);
        }
        let text = std::str::from_utf8(self.value()?).ok()?;
        Some(Some(RawJson::from_text(text)))
    }

    fn is_null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' && self.b.get(self.i..self.i + 4) == Some(b"null") {
            self.value()?;
            return Some(true);
        }
        Some(false)
    }
}

/// One bit (the high bit of the byte) per byte of `x` equal to `c`; exact up to the lowest set
/// bit (a borrow may set higher ones), which is all [`plain_len`] reads.
fn bytes_equal(x: u64, c: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let v = x ^ (ONES * u64::from(c));
    v.wrapping_sub(ONES) & !v & (ONES << 7)
}

/// The length of a string's contents starting `b` when they are printable ASCII without
/// escapes, up to 64 bytes (then its closing quote is `b[len]`); `None` otherwise. Eight bytes
/// at a time: the lowest byte that is a quote, a backslash, a control character or not ASCII
/// decides.
fn plain_len(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut i = 0;
    while i < 64 {
        let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) else {
            // Fewer than 8 bytes left: one at a time.
            let n = b
                .get(i..)?
                .iter()
                .position(|c| *c == b'"' || *c == b'\\' || !(0x20..0x80).contains(c))?;
            return (b.get(i + n) == Some(&b'"')).then_some(i + n);
        };
        let x = u64::from_le_bytes(chunk);
        let control = x.wrapping_sub(ONES * 0x20) & !x & (ONES << 7);
        let special = bytes_equal(x, b'"') | bytes_equal(x, b'\\') | control | (x & (ONES << 7));
        if special != 0 {
            let at = i + (special.trailing_zeros() / 8) as usize;
            return (b.get(at) == Some(&b'"')).then_some(at);
        }
        i += 8;
    }
    None
}

/// The index of the closing quote of a string whose contents start at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i);
        }
        // A backslash escapes the next byte (for \uXXXX the hex digits are no quote either).
        i += 2;
    }
}

/// The masks of one 64-byte block, one bit per byte: quotes, backslashes and brackets (`{`, `[`,
/// `}`, `]`; OR-ing 0x20 maps `[` to `{` and `]` to `}`, and nothing else to them). Backslashes
/// are rare outside long strings, so their mask is built only when the block has one: two
/// classes per lane instead of four (each class and lane costs a compare, a movemask, a shift and
/// an OR: about a third of a block's instructions went to the four classes).
fn masks(block: &[u8; 64]) -> [u64; 3] {
    let (quote, backslash) = (u8x16::splat(b'"'), u8x16::splat(b'\\'));
    let (open, close, bit5) = (u8x16::splat(b'{'), u8x16::splat(b'}'), u8x16::splat(0x20));
    let (lanes, _) = block.as_chunks::<16>();
    let mut m = [0u64; 3];
    let mut escapes = u8x16::splat(0);
    for (k, lane) in lanes.iter().enumerate() {
        let v = u8x16::new(*lane);
        let folded = v | bit5;
        let shift = 16 * k;
        m[0] |= u64::from(v.simd_eq(quote).to_bitmask()) << shift;
        m[2] |= u64::from((folded.simd_eq(open) | folded.simd_eq(close)).to_bitmask()) << shift;
        escapes |= v.simd_eq(backslash);
    }
    if escapes.to_bitmask() != 0 {
        for (k, lane) in lanes.iter().enumerate() {
            m[1] |= u64::from(u8x16::new(*lane).simd_eq(backslash).to_bitmask()) << (16 * k);
        }
    }
    m
}

/// Each bit set when an odd number of bits at or below it are set in `x` (inside a string, for
/// a mask of quotes).
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The end (one past the closing bracket) of the object or array whose opening bracket is at
/// `start`, or `None` when it never closes.
pub(crate) fn skip_container(b: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    let mut depth: u32 = 0;
    // All ones when the previous block ended inside a string.
    let mut in_string: u64 = 0;
    // Whether the first byte of this block is escaped by a backslash ending the previous one.
    let mut carry_escape = false;
    let mut tail = [b' '; 64];
    while pos < b.len() {
        let rest = &b[pos..];
        let block: &[u8; 64] = match rest.first_chunk::<64>() {
            Some(block) => block,
            None => {
                // The last, partial block, padded with spaces (which mean nothing here).
                tail[..rest.len()].copy_from_slice(rest);
                &tail
            }
        };
        let [quote, backslash, brackets] = masks(block);
        let mut escaped = u64::from(carry_escape);
        carry_escape = false;
        let mut bs = backslash;
        while bs != 0 {
            let p = bs.trailing_zeros();
            bs &= bs - 1;
            if escaped & (1 << p) != 0 {
                continue;
            }
            if p == 63 {
                carry_escape = true;
            } else {
                escaped |= 1 << (p + 1);
            }
        }
        let quotes = quote & !escaped;
        let strings = prefix_xor(quotes) ^ in_string;
        in_string = ((strings >> 63) & 1).wrapping_neg();
        // Brackets one by one (a block holds a few): cheaper than counting them, as x86-64's
        // baseline has no popcount instruction. Bit 1 tells an opener (`{` 0x7b, `[` 0x5b)
        // from a closer (`}` 0x7d, `]` 0x5d).
        let mut all = brackets & !strings;
        while all != 0 {
            let p = all.trailing_zeros();
            all &= all - 1;
            if block[p as usize % 64] & 2 != 0 {
                depth += 1;
            } else {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(pos + p as usize + 1);
                }
            }
        }
        pos += 64;
    }
    None
}

/// An AdmissionReview read up to its objects: the request without `object` and `oldObject`, and
/// their raw text (`None` when absent or `null`), to be read when a decision needs them.
pub(crate) struct Scanned<'a> {
    pub head: Request,
    pub object: Option<RawObject<'a>>,
    pub old_object: Option<RawObject<'a>>,
}

/// A request object's raw text, with the raw text of the members the routine-write check and
/// the Application view read, noted while skipping it (the last of repeated keys, as serde_json
/// keeps).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawObject<'a> {
    pub text: &'a [u8],
    /// `operation`, when present and not `null`.
    pub operation: Option<&'a [u8]>,
    /// `metadata`.
    pub metadata: Option<&'a [u8]>,
    /// `spec`.
    pub spec: Option<&'a [u8]>,
    /// `status.operationState`, when `status` is an object with that key.
    pub operation_state: Option<&'a [u8]>,
    /// `status` (the last one).
    pub status: Option<&'a [u8]>,
    /// Its members other than `operationState`.
    pub status_rest: StatusRest<'a>,
}

/// Read an AdmissionReview v1 body. `None` when it is not one this reader accepts (the caller
/// then parses it with serde_json, which also explains what is wrong).
pub(crate) fn review(body: &[u8]) -> Option<Scanned<'_>> {
    let mut c = Cursor { b: body, i: 0 };
    let mut api_version = None;
    let mut kind = None;
    let mut request = None;
    c.object(|c, key| {
        match &*key {
            b"apiVersion" if api_version.is_none() => api_version = Some(c.string()?),
            b"kind" if kind.is_none() => kind = Some(c.string()?),
            b"request" if request.is_none() => request = Some(read_request(c)?),
            b"apiVersion" | b"kind" | b"request" => return None,
            _ => {
                c.value()?;
            }
        }
        Some(())
    })?;
    if c.peek().is_some() {
        return None;
    }
    if api_version.as_deref() != Some("admission.k8s.io/v1")
        || kind.as_deref() != Some("AdmissionReview")
    {
        return None;
    }
    request.filter(|r: &Scanned<'_>| !r.head.uid.is_empty())
}

fn read_request<'a>(c: &mut Cursor<'a>) -> Option<Scanned<'a>> {
    let mut uid: Option<String> = None;
    let mut kind: Option<Gvk> = None;
    let mut sub_resource: Option<String> = None;
    let mut name: Option<String> = None;
    let mut namespace: Option<String> = None;
    let mut operation: Option<Operation> = None;
    let mut user_info: Option<UserInfo> = None;
    let mut object: Option<Option<RawObject<'a>>> = None;
    let mut old_object: Option<Option<RawObject<'a>>> = None;
    let mut dry_run: Option<bool> = None;
    /// Set a field once; a repeated field is refused (serde's derive refuses it too).
    fn once<T>(slot: &mut Option<T>, v: Option<T>) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(v?);
        Some(())
    }
    c.object(|c, key| match &*key {
        b"uid" => once(&mut uid, c.parse()),
        b"kind" => once(&mut kind, c.parse()),
        b"subResource" => once(&mut sub_resource, c.parse()),
        b"name" => once(&mut name, c.parse()),
        b"namespace" => once(&mut namespace, c.parse()),
        b"operation" => once(&mut operation, c.parse()),
        b"userInfo" => once(&mut user_info, c.parse()),
        b"object" => once(&mut object, raw_object(c)),
        b"oldObject" => once(&mut old_object, raw_object(c)),
        b"dryRun" => once(&mut dry_run, c.parse()),
        _ => c.value().map(drop),
    })?;
    Some(Scanned {
        head: Request {
            uid: uid?,
            kind: kind.unwrap_or_default(),
            sub_resource: sub_resource.unwrap_or_default(),
            name: name.unwrap_or_default(),
            namespace: namespace.unwrap_or_default(),
            operation: operation?,
            user_info: user_info.unwrap_or_default(),
            object: None,
            old_object: None,
            dry_run: dry_run.unwrap_or_default(),
            app: None,
            old_app: None,
            app_status_changed: false,
        },
        object: object.flatten(),
        old_object: old_object.flatten(),
    })
}

/// An object's raw text (its values skipped, checked structurally) and the parts the routine
/// check and the Application view read; `Some(None)` for `null`.
fn raw_object<'a>(c: &mut Cursor<'a>) -> Option<Option<RawObject<'a>>> {
    if c.is_null()? {
        return Some(None);
    }
    if c.peek()? != b'{' {
        return None;
    }
    let start = c.i;
    let (mut operation, mut metadata, mut spec, mut operation_state) = (None, None, None, None);
    let mut status = None;
    let mut rest = StatusRest::default();
    c.object(|c, key| {
        match &*key {
            b"operation" => operation = if c.is_null()? { None } else { Some(c.value()?) },
            b"metadata" => metadata = Some(c.value()?),
            b"spec" => spec = Some(c.value()?),
            b"status" => {
                // Walked member by member (not skipped whole) to find the operation state.
                operation_state = None;
                rest = StatusRest::default();
                let start = c.i;
                members(c, |c, key| {
                    let v = c.value()?;
                    if *key == *b"operationState" {
                        operation_state = Some(v);
                    } else {
                        rest.note(key, v);
                    }
                    Some(())
                })?;
                status = Some(c.b.get(start..c.i)?);
            }
            _ => {
                c.value()?;
            }
        }
        Some(())
    })?;
    Some(Some(RawObject {
        text: c.b.get(start..c.i)?,
        operation,
        metadata,
        spec,
        operation_state,
        status,
        status_rest: rest,
    }))
}

/// The members of `status` other than `operationState`, noted while the reader walks it (raw key,
/// raw value; at most [`StatusRest::MAX`], keys without escapes), so comparing two objects'
/// status costs no second walk. Anything it cannot hold is compared by walking again.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StatusRest<'a> {
    n: usize,
    overflow: bool,
    members: [(&'a [u8], &'a [u8]); StatusRest::MAX],
}

impl<'a> StatusRest<'a> {
    /// An Application's status has about a dozen members.
    const MAX: usize = 16;

    fn note(&mut self, key: Key<'a>, value: &'a [u8]) {
        let Cow::Borrowed(key) = key else {
            self.overflow = true;
            return;
        };
        if let Some(m) = self.members[..self.n].iter_mut().find(|m| m.0 == key) {
            m.1 = value; // the last of repeated keys, as serde_json
        } else if self.n < Self::MAX {
            self.members[self.n] = (key, value);
            self.n += 1;
        } else {
            self.overflow = true;
        }
    }

    /// The members sorted by key, or `None` when they did not fit.
    fn sorted(&self) -> Option<[(&'a [u8], &'a [u8]); StatusRest::MAX]> {
        if self.overflow {
            return None;
        }
        let mut m = self.members;
        m[..self.n].sort_unstable_by(|a, b| a.0.cmp(b.0));
        Some(m)
    }
}

/// The raw members of a `status` other than `operationState` (the last of repeated keys).
/// A member of an object: its key and its raw value.
type Member<'a> = (Key<'a>, &'a [u8]);

fn status_members(status: Option<&[u8]>) -> Option<Vec<Member<'_>>> {
    let mut out: Vec<Member<'_>> = Vec::new();
    let Some(text) = status else {
        return Some(out);
    };
    read_all(text, |c| {
        members(c, |c, key| {
            let v = c.value()?;
            if *key != *b"operationState" {
                out.retain(|(k, _)| *k != key);
                out.push((key, v));
            }
            Some(())
        })
    })?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Some(out)
}

/// Whether two Applications' `status`, without `operationState`, are the same text member by
/// member. The API server writes both objects with the same encoder, so equal values are equal
/// texts; a text that cannot be read counts as changed.
pub(crate) fn same_status_rest(new: &RawObject<'_>, old: &RawObject<'_>) -> bool {
    let (a, b) = (&new.status_rest, &old.status_rest);
    if let (Some(x), Some(y)) = (a.sorted(), b.sorted()) {
        return a.n == b.n && x[..a.n] == y[..b.n];
    }
    match (status_members(new.status), status_members(old.status)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// An object without `status` other than `status.operationState` (unless `keep_status`: the
/// status-subresource hooks decide on it), and without `metadata.managedFields` (see
/// [`Request::object`]), from its raw text.
pub(crate) fn slim_object(raw: &[u8], keep_status: bool) -> Option<Value> {
    let mut c = Cursor { b: raw, i: 0 };
    let mut out = serde_json::Map::new();
    c.object(|c, key| {
        let v = match &*key {
            b"status" if !keep_status => filtered(c, |k| k == b"operationState")?,
            b"metadata" => filtered(c, |k| k != b"managedFields")?,
            _ => c.parse()?,
        };
        out.insert(String::from_utf8(key.into_owned()).ok()?, v);
        Some(())
    })?;
    if c.peek().is_some() {
        return None;
    }
    Some(Value::Object(out))
}

/// The value of `metadata.<field>.<name>` (`field`: `labels` or `annotations`) in an object's raw
/// `metadata`, if it is a string. `None` when the metadata cannot be read.
pub(crate) fn meta_entry(metadata: &[u8], field: &str, name: &str) -> Option<Option<String>> {
    let mut c = Cursor { b: metadata, i: 0 };
    let mut found = None;
    if c.peek()? != b'{' {
        c.value()?;
        return Some(None);
    }
    c.object(|c, k| {
        if *k != *field.as_bytes() {
            return c.value().map(drop);
        }
        // The last occurrence of the field wins, as serde_json reads it.
        found = None;
        if c.peek()? != b'{' {
            return c.value().map(drop);
        }
        c.object(|c, k| {
            if *k == *name.as_bytes() {
                found = c.parse::<Value>()?.as_str().map(str::to_owned);
                Some(())
            } else {
                c.value().map(drop)
            }
        })
    })?;
    Some(found)
}

/// The [`AppView`] of an Application from the raw members [`raw_object`] noted: the fields it
/// holds are parsed by serde_json, everything else is skipped (checked structurally). `None`
/// when the text is not one this reader accepts. Repeated keys count as serde_json counts them:
/// the last one wins.
pub(crate) fn app_view(o: &RawObject<'_>) -> Option<AppView> {
    let mut v = AppView::default();
    if let Some(text) = o.metadata {
        let mut m = Metadata::default();
        read_all(text, |c| {
            members(c, |c, key| match &*key {
                b"name" => {
                    m.name = c.string_value()?;
                    Some(())
                }
                b"namespace" => {
                    m.namespace = c.string_value()?;
                    Some(())
                }
                b"annotations" => {
                    let text = c.value()?;
                    m.annotations = read_all(text, annotations)?;
                    m.guarded_annotations = Some(read_all(text, |c| {
                        raw_without(c, |k| {
                            UNGUARDED_ANNOTATIONS.iter().any(|u| u.as_bytes() == k)
                        })
                    })?);
                    Some(())
                }
                b"labels" => {
                    let text = c.value()?;
                    m.lockdown = read_all(text, |c| {
                        let mut lockdown = None;
                        members(c, |c, key| {
                            if *key == *LOCKDOWN.as_bytes() {
                                lockdown = c.string_value()?;
                                Some(())
                            } else {
                                c.value().map(drop)
                            }
                        })?;
                        Some(lockdown)
                    })?;
                    m.labels = Some(text);
                    Some(())
                }
                b"finalizers" => {
                    m.finalizers = Some(c.value()?);
                    Some(())
                }
                _ => c.value().map(drop),
            })
        })?;
        (v.name, v.namespace) = (m.name.unwrap_or_default(), m.namespace.unwrap_or_default());
        (v.annotations, v.lockdown) = (m.annotations, m.lockdown);
        fn raw_or_null(t: Option<&[u8]>) -> &str {
            t.and_then(|t| std::str::from_utf8(t).ok())
                .unwrap_or("null")
        }
        v.guarded_meta = RawJson::from_text(&format!(
            "{{\"labels\":{},\"annotations\":{},\"finalizers\":{}}}",
            raw_or_null(m.labels),
            m.guarded_annotations.as_deref().unwrap_or("null"),
            raw_or_null(m.finalizers)
        ));
    } else {
        v.guarded_meta = RawJson::of(&super::view::guarded_metadata(None, None, None));
    }
    if let Some(text) = o.spec {
        let mut s = Spec::default();
        read_all(text, |c| {
            members(c, |c, key| match &*key {
                b"source" => {
                    s.source = c.raw_json()?;
                    Some(())
                }
                b"sources" => {
                    s.sources = c.raw_json()?;
                    s.multi_source = s.sources.as_ref().is_some_and(|r| {
                        let t = r.text().trim_start();
                        t.starts_with('[') && !t[1..].trim_start().starts_with(']')
                    });
                    Some(())
                }
                b"syncPolicy" => {
                    let text = c.value()?;
                    (s.sync_options, s.retry) = (None, None);
                    read_all(text, |c| {
                        members(c, |c, key| match &*key {
                            b"syncOptions" => {
                                s.sync_options = Some(c.parse()?);
                                Some(())
                            }
                            b"retry" => {
                                s.retry = Some(c.parse()?);
                                Some(())
                            }
                            _ => c.value().map(drop),
                        })
                    })?;
                    Some(())
                }
                _ => c.value().map(drop),
            })
        })?;
        (v.source, v.sources, v.multi_source) = (s.source, s.sources, s.multi_source);
        (v.sync_options, v.retry) = (s.sync_options, s.retry);
        v.spec_rest = Some(RawJson::from_text(&read_all(text, |c| {
            raw_without(c, |k| k == b"source" || k == b"sources")
        })?));
    }
    if let Some(text) = o.operation {
        v.operation = Some(operation_view(text)?);
    }
    if let Some(text) = o.operation_state {
        v.operation_state = Some(read_all(text, operation_state)?);
    }
    Some(v)
}

/// The view of an `operation` (not `null`) from its raw text: `info` and `sync` are walked for
/// what the view holds, the text is checked by serde_json and kept.
fn operation_view(text: &[u8]) -> Option<OperationView> {
    let raw = read_all(text, Cursor::raw_json)??;
    let mut v = OperationView {
        raw,
        promotion: None,
        project: None,
        revision: None,
        revisions: None,
    };
    read_all(text, |c| {
        members(c, |c, key| match &*key {
            b"info" => {
                (v.promotion, v.project) = info(c)?;
                Some(())
            }
            b"sync" => {
                (v.revision, v.revisions) = (None, None);
                members(c, |c, key| match &*key {
                    b"revision" => {
                        v.revision = c.string_value()?;
                        Some(())
                    }
                    b"revisions" => {
                        let mut list = Vec::new();
                        let is_list = elements(c, |c| {
                            list.push(c.string_value()?.unwrap_or_default());
                            Some(())
                        })?;
                        v.revisions = is_list.then_some(list);
                        Some(())
                    }
                    _ => c.value().map(drop),
                })
                .map(drop)
            }
            _ => c.value().map(drop),
        })
    })?;
    Some(v)
}

/// The Promotion and the project an operation's `info` names: the value of the first entry with
/// each name, when that is a string (`promote_api::argocd::promotion_in_info`).
fn info(c: &mut Cursor<'_>) -> Option<(Option<String>, Option<String>)> {
    // `Some(value)` once the first entry with the name is seen.
    let (mut promotion, mut project): (Option<Option<String>>, Option<Option<String>>) =
        (None, None);
    elements(c, |c| {
        let (mut name, mut value) = (None, None);
        members(c, |c, key| match &*key {
            b"name" => {
                name = c.str_value()?;
                Some(())
            }
            b"value" => {
                value = Some(c.str_value()?);
                Some(())
            }
            _ => c.value().map(drop),
        })?;
        let slot = match name.as_deref() {
            Some(PROMOTION_INFO) => &mut promotion,
            Some(PROJECT_INFO) => &mut project,
            _ => return Some(()),
        };
        if slot.is_none() {
            *slot = Some(value.flatten().map(Cow::into_owned));
        }
        Some(())
    })?;
    Some((promotion.flatten(), project.flatten()))
}

/// Call `f` with each element of the array at the cursor; any other value is skipped. Whether it
/// was an array.
fn elements<'a>(
    c: &mut Cursor<'a>,
    mut f: impl FnMut(&mut Cursor<'a>) -> Option<()>,
) -> Option<bool> {
    if c.peek()? != b'[' {
        c.value()?;
        return Some(false);
    }
    c.i += 1;
    if c.peek()? == b']' {
        c.i += 1;
        return Some(true);
    }
    loop {
        f(c)?;
        match c.peek()? {
            b',' => c.i += 1,
            b']' => {
                c.i += 1;
                return Some(true);
            }
            _ => return None,
        }
    }
}

/// Read the one value `text` holds with `f`.
fn read_all<'a, T>(text: &'a [u8], f: impl FnOnce(&mut Cursor<'a>) -> Option<T>) -> Option<T> {
    let mut c = Cursor { b: text, i: 0 };
    let out = f(&mut c)?;
    c.peek().is_none().then_some(out)
}

/// What an Application's `metadata` holds for its view (one occurrence of the key).
#[derive(Default)]
struct Metadata<'a> {
    name: Option<String>,
    namespace: Option<String>,
    annotations: Annotations,
    lockdown: Option<String>,
    /// The annotations lockdown covers, as JSON text.
    guarded_annotations: Option<String>,
    labels: Option<&'a [u8]>,
    finalizers: Option<&'a [u8]>,
}

/// What an Application's `spec` holds for its view (one occurrence of the key).
#[derive(Default)]
struct Spec {
    source: Option<RawJson>,
    sources: Option<RawJson>,
    multi_source: bool,
    sync_options: Option<Value>,
    retry: Option<Value>,
}

/// Call `f` with each member of the object at the cursor; any other value is skipped. Whether it
/// was an object.
fn members<'a>(
    c: &mut Cursor<'a>,
    f: impl FnMut(&mut Cursor<'a>, Key<'a>) -> Option<()>,
) -> Option<bool> {
    if c.peek()? == b'{' {
        c.object(f)?;
        Some(true)
    } else {
        c.value()?;
        Some(false)
    }
}

/// What promote reads of `metadata.annotations` (the last of repeated keys, as serde_json).
fn annotations(c: &mut Cursor<'_>) -> Option<Annotations> {
    let (mut authorized_stage, mut refresh) = (None, None);
    let is_object = members(c, |c, key| match &*key {
        k if k == AUTHORIZED_STAGE.as_bytes() => {
            authorized_stage = c.string_value()?;
            Some(())
        }
        k if k == ARGOCD_REFRESH.as_bytes() => {
            refresh = Some(c.string_value()?);
            Some(())
        }
        _ => c.value().map(drop),
    })?;
    Some(if is_object {
        Annotations::Map {
            authorized_stage,
            refresh,
        }
    } else {
        Annotations::NotAnObject
    })
}

/// The value at the cursor as JSON text, without the members `skip` names when it is an object:
/// the raw text of each kept member, copied, never parsed. Compared as [`RawJson`] (text first,
/// values only when the texts differ), so the API server's own bytes make the common case a
/// comparison of two strings.
fn raw_without(c: &mut Cursor<'_>, skip: impl Fn(&[u8]) -> bool) -> Option<String> {
    if c.peek()? != b'{' {
        return std::str::from_utf8(c.value()?).ok().map(str::to_owned);
    }
    let mut out = String::from("{");
    c.object(|c, key| {
        let v = c.value()?;
        if !skip(&key) {
            if out.len() > 1 {
                out.push(',');
            }
            let key = std::str::from_utf8(&key).ok()?;
            if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
                out.push('"');
                out.push_str(key);
                out.push('"');
            } else {
                out.push_str(&serde_json::to_string(key).ok()?);
            }
            out.push(':');
            out.push_str(std::str::from_utf8(v).ok()?);
        }
        Some(())
    })?;
    out.push('}');
    Some(out)
}

fn operation_state(c: &mut Cursor<'_>) -> Option<OperationState> {
    let mut state = OperationState::default();
    members(c, |c, key| match &*key {
        b"phase" => {
            state.phase = c.string_value()?;
            Some(())
        }
        b"operation" => {
            state.promotion = None;
            members(c, |c, key| {
                if *key == *b"info" {
                    let info: Value = c.parse()?;
                    state.promotion = promotion_in_info(&info).map(str::to_owned);
                    Some(())
                } else {
                    c.value().map(drop)
                }
            })
            .map(drop)
        }
        _ => c.value().map(drop),
    })?;
    Some(state)
}

/// An object (or `null`) keeping only the keys `keep` accepts.
fn filtered(c: &mut Cursor<'_>, keep: impl Fn(&[u8]) -> bool) -> Option<Value> {
    if c.is_null()? {
        return Some(Value::Null);
    }
    if c.peek()? != b'{' {
        // Not an object: serde's visitor refuses it too.
        return None;
    }
    let mut out = serde_json::Map::new();
    c.object(|c, key| {
        if keep(&key) {
            out.insert(String::from_utf8(key.into_owned()).ok()?, c.parse()?);
        } else {
            c.value()?;
        }
        Some(())
    })?;
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Strings full of what confuses a structural scanner: quotes, backslash runs, brackets,
    /// control characters (escaped by serde_json), non-ASCII.
    fn string(r: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "a",
            "\"",
            "\\",
            "\\\\",
            "{",
            "}",
            "[",
            "]",
            "\\\"",
            "é",
            "😀",
            "\n",
            "\u{1}",
            " ",
            ",",
            ":",
            "guestbook",
            "\\\\\\",
        ];
        let len = r.below(12);
        (0..len)
            .map(|_| PIECES[r.below(PIECES.len() as u64) as usize])
            .collect()
    }

    fn value(r: &mut Rng, depth: u32) -> Value {
        match r.below(if depth > 4 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(r.below(2) == 0),
            2 => json!(r.next() as i64 / 1000),
            3 => json!(1.5e-3),
            4 => json!(string(r)),
            5 | 6 => Value::Object(
                (0..r.below(6))
                    .map(|_| (string(r), value(r, depth + 1)))
                    .collect(),
            ),
            _ => Value::Array((0..r.below(6)).map(|_| value(r, depth + 1)).collect()),
        }
    }

    #[test]
    fn skip_container_finds_the_end_serde_finds() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..4000 {
            let v = match value(&mut r, 0) {
                v @ (Value::Object(_) | Value::Array(_)) => v,
                other => json!([other, {"k": other}]),
            };
            let text = if round % 2 == 0 {
                serde_json::to_string(&v).unwrap()
            } else {
                serde_json::to_string_pretty(&v).unwrap()
            };
            // Shift the value across block boundaries and follow it with more JSON.
            let pad = " ".repeat(r.below(130) as usize);
            let body = format!("{pad}{text},\"tail\"]}}");
            assert_eq!(
                skip_container(body.as_bytes(), pad.len()),
                Some(pad.len() + text.len()),
                "round {round}: {body}"
            );
        }
    }

    #[test]
    fn skip_container_handles_escapes_at_block_edges() {
        // A backslash run ending exactly at each position around the 64-byte edge.
        for at in 55..75 {
            for run in 1..6 {
                let mut s = String::from("[\"");
                s.push_str(&"x".repeat(at - 2));
                s.push_str(&"\\".repeat(run));
                if run % 2 == 1 {
                    // An odd run escapes the quote that follows; a bracket then stays inside.
                    s.push_str("\"]");
                }
                s.push_str("\"]");
                let v: Value = serde_json::from_str(&s).unwrap();
                let body = format!("{s} trailing");
                assert_eq!(
                    skip_container(body.as_bytes(), 0),
                    Some(s.len()),
                    "at {at}, run {run}: {s} ({v})"
                );
            }
        }
    }

    #[test]
    fn plain_len_finds_what_a_byte_loop_finds() {
        let mut r = Rng(0x2545_f491);
        const BYTES: &[u8] = b"aZ09 ~\"\\\x00\x1f\x7f\x80\xc3\xa9\xff";
        for _ in 0..20_000 {
            let len = r.below(90) as usize;
            let b: Vec<u8> = (0..len)
                .map(|_| match r.below(4) {
                    0 => BYTES[r.below(BYTES.len() as u64) as usize],
                    _ => b'a' + r.below(26) as u8,
                })
                .collect();
            let naive = b
                .iter()
                .position(|c| *c == b'"' || *c == b'\\' || !(0x20..0x80).contains(c))
                .filter(|n| b[*n] == b'"' && *n < 64 + 8);
            let fast = plain_len(&b);
            // The fast one gives up after 64 bytes; whatever it finds, the loop finds too.
            match fast {
                Some(n) => assert_eq!(Some(n), naive, "{b:?}"),
                None => assert!(naive.is_none_or(|n| n >= 64), "{b:?}"),
            }
        }
    }

    #[test]
    fn skip_container_refuses_what_never_closes() {
        for bad in [
            "{",
            "[[]",
            r#"{"a": "}"#,
            r#"["\"]"#,
            &format!("[{}", "\"x\",".repeat(100)),
        ] {
            assert_eq!(skip_container(bad.as_bytes(), 0), None, "{bad}");
        }
    }

    /// The fast reader's whole request, objects read.
    fn read(body: &[u8]) -> Option<Request> {
        let s = review(body)?;
        let slim = |r: Option<RawObject<'_>>| match r {
            None => Some(None),
            Some(r) => slim_object(r.text, false).map(Some),
        };
        Some(Request {
            object: slim(s.object)?,
            old_object: slim(s.old_object)?,
            ..s.head
        })
    }

    fn slim(v: &mut Value) {
        if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
            status.retain(|k, _| k == "operationState");
        }
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }

    fn review_body(r: &mut Rng, object: &Value, old: &Value) -> String {
        serde_json::to_string(&json!({
            "kind": "AdmissionReview",
            "apiVersion": "admission.k8s.io/v1",
            "request": {
                "uid": format!("uid-{}", string(r)),
                "kind": {"group": "argoproj.io", "version": "v1alpha1", "kind": "Application"},
                "resource": {"group": "argoproj.io", "version": "v1alpha1", "resource": "applications"},
                "requestKind": {"group": "argoproj.io", "version": "v1alpha1", "kind": "Application"},
                "name": string(r),
                "namespace": "argocd",
                "operation": "UPDATE",
                "userInfo": {"username": string(r), "groups": ["system:authenticated"], "extra": {"k": [string(r)]}},
                "object": object,
                "oldObject": old,
                "dryRun": r.below(2) == 0,
                "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
            }
        }))
        .unwrap()
    }

    fn application(r: &mut Rng) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": string(r),
                "annotations": {"kargo.akuity.io/authorized-stage": string(r), "last": string(r)},
                "managedFields": [value(r, 0), value(r, 0)],
            },
            "spec": value(r, 1),
            "operation": value(r, 2),
            "status": {
                "resources": [value(r, 0), value(r, 0), value(r, 0)],
                "operationState": value(r, 1),
                "sync": value(r, 1),
            },
        })
    }

    #[test]
    fn review_reads_what_serde_reads() {
        let mut r = Rng(42);
        for round in 0..1500 {
            let (object, old) = (application(&mut r), application(&mut r));
            let body = review_body(&mut r, &object, &old);
            let fast = read(body.as_bytes()).unwrap_or_else(|| panic!("round {round}: {body}"));
            let mut slow = super::super::parse_review_serde(body.as_bytes()).unwrap();
            for o in [&mut slow.object, &mut slow.old_object]
                .into_iter()
                .flatten()
            {
                slim(o);
            }
            assert_eq!(fast, slow, "round {round}");
        }
    }

    #[test]
    fn review_leaves_to_serde_what_it_does_not_accept() {
        let ok = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"status":{"a":[1]}},"oldObject":null}}"#;
        let req = read(ok.as_bytes()).unwrap();
        assert_eq!(req.object, Some(json!({"status": {}})));
        assert_eq!(req.old_object, None);
        for bad in [
            // Trailing data, a repeated field, a wrong type, an unterminated skipped value.
            &format!("{ok} x"),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","uid":"v","operation":"CREATE"}}"#,
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"status":[]}}}"#,
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"status":{"a":[1}}}}"#,
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","x":tru}}"#,
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"","operation":"CREATE"}}"#,
            r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE"}}"#,
            "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"a\u{1}\",\"operation\":\"CREATE\"}}",
        ] {
            assert_eq!(read(bad.as_bytes()), None, "{bad}");
        }
        // Escaped keys and values are unescaped like serde does.
        let escaped = r#"{"apiVersion":"admission.k8s.io\/v1","kind":"AdmissionReview","request":{"u\u0069d":"\u00e9","operation":"DELETE"}}"#;
        assert_eq!(read(escaped.as_bytes()).unwrap().uid, "é");
    }

    #[test]
    fn broken_bodies_are_refused_without_panicking() {
        let mut r = Rng(7);
        let (object, old) = (application(&mut r), application(&mut r));
        let body = review_body(&mut r, &object, &old).into_bytes();
        // Every truncation, and random bytes overwritten with JSON's structural characters.
        for len in 0..body.len() {
            let cut = &body[..len];
            assert!(review(cut).is_none() || len == body.len());
            let _ = super::super::parse_review(cut);
        }
        const NASTY: &[u8] = b"{}[]\":,\\ \x000e-\xff";
        for _ in 0..3000 {
            let mut b = body.clone();
            for _ in 0..1 + r.below(4) {
                let at = r.below(b.len() as u64) as usize;
                b[at] = NASTY[r.below(NASTY.len() as u64) as usize];
            }
            if let Ok(review) = super::super::read_review(&b) {
                let _ = crate::admission::settled(
                    &review,
                    crate::admission::Hook::ValidateApplication,
                    &crate::admission::Policy::default(),
                );
                let _ = review.into_request();
            }
            // Where serde_json reads the body too, both read the same request.
            if let (Some(fast), Ok(mut slow)) = (read(&b), super::super::parse_review_serde(&b)) {
                for o in [&mut slow.object, &mut slow.old_object]
                    .into_iter()
                    .flatten()
                {
                    slim(o);
                }
                assert_eq!(fast, slow, "{}", String::from_utf8_lossy(&b));
            }
        }
    }

    /// One of `choices`, or a random value.
    fn one_of(r: &mut Rng, choices: Vec<Value>) -> Value {
        let n = choices.len() as u64;
        match r.below(n + 1) {
            i if i < n => choices[i as usize].clone(),
            _ => value(r, 3),
        }
    }

    /// Insert `key` unless the dice say it is absent.
    macro_rules! maybe {
        ($r:expr, $m:expr, $key:expr, $v:expr) => {{
            let v = $v;
            if $r.below(4) != 0 {
                $m.insert($key.to_owned(), v);
            }
        }};
    }

    /// An Application shaped like the ones the hooks see, with every field the view reads
    /// present, absent, `null`, of another type or random.
    fn viewed_application(r: &mut Rng) -> Value {
        use promote_api::keys::{ARGOCD_REFRESH, AUTHORIZED_STAGE, LOCKDOWN};
        let info = |r: &mut Rng| {
            let promo = one_of(r, vec![json!("p1"), json!("p2"), json!(7)]);
            let project = one_of(r, vec![json!("kargo-demo"), json!("d\u{e9}mo \\ \"x\"")]);
            let mut entries = vec![
                json!({"name": "Reason", "value": "x"}),
                json!({"name": "kargo.akuity.io/promotion", "value": promo}),
                json!("junk"),
                json!({"name": "kargo.akuity.io/promotion", "value": "second"}),
                json!({"name": "kargo.akuity.io/project", "value": project}),
                json!({"value": "p3", "name": "kargo.akuity.io/project"}),
                json!({"name": 1, "value": "p4"}),
            ];
            let n = entries.len() as u64;
            for _ in 0..r.below(8) {
                let (i, j) = (r.below(n) as usize, r.below(n) as usize);
                entries.swap(i, j);
            }
            let k = r.below(n + 1) as usize;
            Value::Array(entries.into_iter().take(k).collect())
        };
        let sync = |r: &mut Rng| {
            let mut sync = serde_json::Map::new();
            let any = json!(string(r));
            let revision = one_of(r, vec![any, json!("main"), Value::Null]);
            maybe!(r, sync, "revision", revision);
            let revisions = one_of(r, vec![json!(["1.0", "", 3, null]), json!([]), json!("x")]);
            maybe!(r, sync, "revisions", revisions);
            maybe!(r, sync, "prune", json!(true));
            Value::Object(sync)
        };
        let mut a = serde_json::Map::new();
        let mut meta = serde_json::Map::new();
        let name = json!(string(r));
        maybe!(r, meta, "name", one_of(r, vec![name, json!("guestbook")]));
        maybe!(r, meta, "namespace", one_of(r, vec![json!("argocd")]));
        let mut ann = serde_json::Map::new();
        maybe!(r, ann, "other", json!(string(r)));
        let stage = json!(string(r));
        maybe!(
            r,
            ann,
            AUTHORIZED_STAGE,
            one_of(r, vec![json!("kargo-demo:test"), stage])
        );
        maybe!(
            r,
            ann,
            ARGOCD_REFRESH,
            one_of(r, vec![json!("hard"), json!("normal")])
        );
        maybe!(
            r,
            meta,
            "annotations",
            one_of(r, vec![Value::Object(ann), Value::Null])
        );
        let mut labels = serde_json::Map::new();
        maybe!(
            r,
            labels,
            LOCKDOWN,
            one_of(r, vec![json!("true"), json!("false"), json!(true)])
        );
        maybe!(r, meta, "labels", one_of(r, vec![Value::Object(labels)]));
        maybe!(r, meta, "managedFields", json!([value(r, 1)]));
        maybe!(r, a, "metadata", one_of(r, vec![Value::Object(meta)]));
        let mut spec = serde_json::Map::new();
        maybe!(r, spec, "project", json!("default"));
        let source = json!({"repoURL": string(r), "targetRevision": "main"});
        maybe!(r, spec, "source", one_of(r, vec![source, Value::Null]));
        maybe!(
            r,
            spec,
            "sources",
            one_of(
                r,
                vec![
                    json!([]),
                    json!([{"repoURL": "a", "targetRevision": "1.0"}, {"repoURL": "b"}]),
                    Value::Null
                ]
            )
        );
        let mut policy = serde_json::Map::new();
        maybe!(r, policy, "automated", json!({}));
        maybe!(
            r,
            policy,
            "syncOptions",
            one_of(
                r,
                vec![json!(["CreateNamespace=true"]), json!([]), Value::Null]
            )
        );
        maybe!(
            r,
            policy,
            "retry",
            one_of(r, vec![json!({"limit": 3}), Value::Null])
        );
        maybe!(
            r,
            spec,
            "syncPolicy",
            one_of(r, vec![Value::Object(policy), Value::Null])
        );
        maybe!(r, a, "spec", one_of(r, vec![Value::Object(spec)]));
        let mut op = serde_json::Map::new();
        let entries = info(r);
        maybe!(r, op, "info", one_of(r, vec![entries]));
        let sync = sync(r);
        maybe!(r, op, "sync", one_of(r, vec![sync]));
        maybe!(
            r,
            a,
            "operation",
            one_of(r, vec![Value::Object(op.clone()), Value::Null])
        );
        let mut state = serde_json::Map::new();
        maybe!(
            r,
            state,
            "phase",
            one_of(
                r,
                vec![json!("Running"), json!("Succeeded"), json!("Terminating")]
            )
        );
        maybe!(
            r,
            state,
            "operation",
            one_of(r, vec![Value::Object(op), Value::Null])
        );
        let mut status = serde_json::Map::new();
        maybe!(r, status, "resources", json!([value(r, 1), value(r, 1)]));
        maybe!(
            r,
            status,
            "operationState",
            one_of(r, vec![Value::Object(state), Value::Null])
        );
        maybe!(
            r,
            a,
            "status",
            one_of(r, vec![Value::Object(status), Value::Null])
        );
        Value::Object(a)
    }

    /// The view of an object's text, through both readers' passes.
    fn view_of(text: &[u8]) -> Option<AppView> {
        app_view(&read_all(text, raw_object)??)
    }

    #[test]
    fn app_view_reads_what_the_reference_reads() {
        let mut r = Rng(0x51ed_2701);
        for round in 0..6000 {
            let app = viewed_application(&mut r);
            let text = if round % 3 == 0 {
                serde_json::to_string_pretty(&app).unwrap()
            } else {
                serde_json::to_string(&app).unwrap()
            };
            let fast = view_of(text.as_bytes()).unwrap_or_else(|| panic!("round {round}: {text}"));
            assert_eq!(fast, AppView::from_value(&app), "round {round}: {text}");
        }
        // Repeated keys: the last one wins, as in serde_json's map.
        for text in [
            r#"{"metadata":{"name":"a","labels":{"promote.dev/lockdown":"true"}},"metadata":{"name":"b"}}"#,
            r#"{"metadata":{"labels":{"promote.dev/lockdown":"true"},"labels":{"a":"b"}}}"#,
            r#"{"status":{"operationState":{"phase":"Running"}},"status":{"sync":{}},"operation":{},"operation":null}"#,
            r#"{"spec":{"sources":[1],"sources":[],"syncPolicy":{"retry":1},"syncPolicy":{}}}"#,
            r#"{"operation":{"info":[]},"operation":null,"status":{"operationState":{"phase":"Running","phase":1}}}"#,
            r#"{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"hard","argocd.argoproj.io/refresh":2}}}"#,
            r#"{"status":{"operationState":{"operation":{"info":[{"name":"kargo.akuity.io/promotion","value":"p"}]},"operation":[]}}}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                view_of(text.as_bytes()),
                Some(AppView::from_value(&value)),
                "{text}"
            );
        }
    }

    #[test]
    fn app_view_agrees_with_serde_on_broken_objects() {
        let mut r = Rng(99);
        const NASTY: &[u8] = b"{}[]\":,\\ \x000e-\xffn";
        for _ in 0..3000 {
            let mut b = serde_json::to_vec(&viewed_application(&mut r)).unwrap();
            for _ in 0..1 + r.below(3) {
                let at = r.below(b.len() as u64) as usize;
                b[at] = NASTY[r.below(NASTY.len() as u64) as usize];
            }
            let fast = view_of(&b);
            if let Ok(value) = serde_json::from_slice::<Value>(&b)
                && value.is_object()
            {
                assert_eq!(
                    fast,
                    Some(AppView::from_value(&value)),
                    "{}",
                    String::from_utf8_lossy(&b)
                );
            }
        }
    }
}
