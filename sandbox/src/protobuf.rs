//! Decoding of the Kubernetes protobuf wire format for the built-in kinds kubectl sends that way.
//!
//! client-go's typed clientsets send built-ins (`kubectl create namespace`, `kubectl auth
//! can-i`, `kubectl create rolebinding`…) as `application/vnd.kubernetes.protobuf`: a `k8s\0`
//! magic, then a `runtime.Unknown` envelope holding the object's message. This module turns those
//! messages into the JSON the rest of the sandbox works with, from a small table of field numbers
//! taken from `k8s.io/api` `generated.proto`. Answers are always JSON, which clients accept.

use base64::Engine;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum F {
    Str,
    Int,
    Bool,
    Time,
    Msg(&'static [Field]),
    RepStr,
    RepMsg(&'static [Field]),
    MapStr,
    MapBytes,
    MapRepStr,
}

type Field = (u32, &'static str, F);

const OWNER_REF: &[Field] = &[
    (5, "apiVersion", F::Str),
    (1, "kind", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (6, "controller", F::Bool),
    (7, "blockOwnerDeletion", F::Bool),
];
const OBJECT_META: &[Field] = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (5, "uid", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "generation", F::Int),
    (8, "creationTimestamp", F::Time),
    (11, "labels", F::MapStr),
    (12, "annotations", F::MapStr),
    (13, "ownerReferences", F::RepMsg(OWNER_REF)),
    (14, "finalizers", F::RepStr),
];
const NAMESPACE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(&[(1, "finalizers", F::RepStr)])),
    (3, "status", F::Msg(&[(1, "phase", F::Str)])),
];
const SECRET: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStr),
    (5, "immutable", F::Bool),
];
const CONFIG_MAP: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapStr),
    (3, "binaryData", F::MapBytes),
    (4, "immutable", F::Bool),
];
const OBJECT_REF: &[Field] = &[
    (1, "kind", F::Str),
    (2, "namespace", F::Str),
    (3, "name", F::Str),
];
const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "secrets", F::RepMsg(OBJECT_REF)),
    (4, "automountServiceAccountToken", F::Bool),
];
const POLICY_RULE: &[Field] = &[
    (1, "verbs", F::RepStr),
    (2, "apiGroups", F::RepStr),
    (3, "resources", F::RepStr),
    (4, "resourceNames", F::RepStr),
    (5, "nonResourceURLs", F::RepStr),
];
const SUBJECT: &[Field] = &[
    (1, "kind", F::Str),
    (2, "apiGroup", F::Str),
    (3, "name", F::Str),
    (4, "namespace", F::Str),
];
const ROLE_REF: &[Field] = &[
    (1, "apiGroup", F::Str),
    (2, "kind", F::Str),
    (3, "name", F::Str),
];
const ROLE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "rules", F::RepMsg(POLICY_RULE)),
];
const BINDING: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "subjects", F::RepMsg(SUBJECT)),
    (3, "roleRef", F::Msg(ROLE_REF)),
];
const RESOURCE_ATTRS: &[Field] = &[
    (1, "namespace", F::Str),
    (2, "verb", F::Str),
    (3, "group", F::Str),
    (4, "version", F::Str),
    (5, "resource", F::Str),
    (6, "subresource", F::Str),
    (7, "name", F::Str),
];
const NON_RESOURCE_ATTRS: &[Field] = &[(1, "path", F::Str), (2, "verb", F::Str)];
const SSAR_SPEC: &[Field] = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRS)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRS)),
];
const SAR_SPEC: &[Field] = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRS)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRS)),
    (3, "user", F::Str),
    (4, "groups", F::RepStr),
    (5, "extra", F::MapRepStr),
    (6, "uid", F::Str),
];
const SSAR: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SSAR_SPEC)),
];
const SAR: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SAR_SPEC)),
];
const DELETE_OPTIONS: &[Field] = &[
    (1, "gracePeriodSeconds", F::Int),
    (
        2,
        "preconditions",
        F::Msg(&[(1, "uid", F::Str), (2, "resourceVersion", F::Str)]),
    ),
    (3, "orphanDependents", F::Bool),
    (4, "propagationPolicy", F::Str),
    (5, "dryRun", F::RepStr),
];

fn message_for(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "Namespace" => NAMESPACE,
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => BINDING,
        "SelfSubjectAccessReview" => SSAR,
        // `kubectl auth whoami`: the request carries nothing but metadata.
        "SelfSubjectReview" => &[(1, "metadata", F::Msg(OBJECT_META))],
        "SubjectAccessReview" | "LocalSubjectAccessReview" => SAR,
        "DeleteOptions" => DELETE_OPTIONS,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => {
                self.pos += 8;
                Ok(())
            }
            2 => self.bytes().map(|_| ()),
            5 => {
                self.pos += 4;
                Ok(())
            }
            w => Err(format!("unsupported wire type {w}")),
        }
    }

    /// Every (field number, wire type, payload) of a message.
    fn fields(buf: &'a [u8]) -> Result<Vec<(u32, u64, Payload<'a>)>, String> {
        let mut r = Reader { buf, pos: 0 };
        let mut out = vec![];
        while r.pos < r.buf.len() {
            let tag = r.varint()?;
            let (num, wire) = (u32::try_from(tag >> 3).map_err(|_| "bad tag")?, tag & 7);
            match wire {
                0 => out.push((num, wire, Payload::Varint(r.varint()?))),
                2 => out.push((num, wire, Payload::Bytes(r.bytes()?))),
                w => r.skip(w)?,
            }
        }
        Ok(out)
    }
}

enum Payload<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn text(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

fn decode(buf: &[u8], desc: &[Field]) -> Result<Value, String> {
    let mut out = Map::new();
    for (num, _wire, payload) in Reader::fields(buf)? {
        let Some((_, name, kind)) = desc.iter().find(|(n, _, _)| *n == num) else {
            continue;
        };
        let name = (*name).to_owned();
        match (kind, payload) {
            // Go's omitempty: empty strings are not written in JSON.
            (F::Str, Payload::Bytes(b)) => {
                if !b.is_empty() {
                    out.insert(name, text(b));
                }
            }
            (F::Int, Payload::Varint(v)) => {
                out.insert(name, json!(v as i64));
            }
            (F::Bool, Payload::Varint(v)) => {
                out.insert(name, json!(v != 0));
            }
            (F::Time, Payload::Bytes(b)) => {
                let secs = Reader::fields(b)?
                    .into_iter()
                    .find_map(|(n, _, p)| match (n, p) {
                        (1, Payload::Varint(v)) => Some(v as i64),
                        _ => None,
                    })
                    .unwrap_or(0);
                let t = jiff::Timestamp::from_second(secs).map_err(|e| e.to_string())?;
                out.insert(name, json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
            }
            (F::Msg(d), Payload::Bytes(b)) => {
                out.insert(name, decode(b, d)?);
            }
            (F::RepStr, Payload::Bytes(b)) => {
                let list = out.entry(name).or_insert(json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(text(b));
                }
            }
            (F::RepMsg(d), Payload::Bytes(b)) => {
                let item = decode(b, d)?;
                let list = out.entry(name).or_insert(json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(item);
                }
            }
            (F::MapStr | F::MapBytes | F::MapRepStr, Payload::Bytes(b)) => {
                let mut key = String::new();
                let mut value = Value::Null;
                for (n, _, p) in Reader::fields(b)? {
                    if let Payload::Bytes(x) = p {
                        match (n, kind) {
                            (1, _) => key = String::from_utf8_lossy(x).into_owned(),
                            (2, F::MapBytes) => {
                                value = json!(base64::engine::general_purpose::STANDARD.encode(x))
                            }
                            (2, F::MapRepStr) => {
                                let items = decode(x, &[(1, "items", F::RepStr)])?;
                                value = items.get("items").cloned().unwrap_or(json!([]));
                            }
                            (2, _) => value = text(x),
                            _ => {}
                        }
                    }
                }
                let map = out.entry(name).or_insert(json!({}));
                if let Some(m) = map.as_object_mut() {
                    m.insert(key, if value.is_null() { json!("") } else { value });
                }
            }
            _ => return Err(format!("field {name:?} has an unexpected wire type")),
        }
    }
    Ok(Value::Object(out))
}

/// Decode a `application/vnd.kubernetes.protobuf` body into JSON.
pub fn to_json(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or("missing the k8s protobuf magic prefix")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, _, p) in Reader::fields(rest)? {
        if let Payload::Bytes(b) = p {
            match n {
                1 => {
                    for (m, _, q) in Reader::fields(b)? {
                        if let Payload::Bytes(s) = q {
                            match m {
                                1 => api_version = String::from_utf8_lossy(s).into_owned(),
                                2 => kind = String::from_utf8_lossy(s).into_owned(),
                                _ => {}
                            }
                        }
                    }
                }
                2 => raw = b,
                _ => {}
            }
        }
    }
    let desc = message_for(&kind).ok_or_else(|| {
        format!("the sandbox cannot decode protobuf for kind {kind:?}; send JSON")
    })?;
    let mut v = decode(raw, desc)?;
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) | 2) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_namespace_envelope() {
        let meta = [
            field(1, b"team-a"),
            field(11, &[field(1, b"env"), field(2, b"dev")].concat()),
        ]
        .concat();
        let ns = field(1, &meta);
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &ns)].concat();
        let v = to_json(&body).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"name": "team-a", "labels": {"env": "dev"}}, "apiVersion": "v1", "kind": "Namespace"})
        );
        assert!(to_json(b"nope").is_err());
    }
}
