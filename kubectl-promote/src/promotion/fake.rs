//! An in-memory API server for the promotion rules' unit tests: objects by path, JSON merge
//! patches (RFC 7386) with the `resourceVersion` precondition, the status subresource, label
//! selectors, and hooks that let a test act as another runner right before a request.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::kube::{Api, ApiFailure};

type Hook = Box<dyn FnOnce(&mut BTreeMap<String, Value>) + Send>;

/// The fake.
#[derive(Default)]
pub struct MemApi {
    objects: Mutex<BTreeMap<String, Value>>,
    version: Mutex<u64>,
    /// Every request: (method, path).
    pub log: Mutex<Vec<(String, String)>>,
    /// Run once before the first write whose path ends with the key.
    hooks: Mutex<Vec<(String, Hook)>>,
    /// Fail writes (`false`) or reads (`true`) whose path ends with the key, with this code,
    /// this many times.
    failures: Mutex<Vec<(String, u16, usize, bool)>>,
    /// Who `whoami` says we are.
    pub user: Option<String>,
}

fn api_failure(code: u16, reason: &str, message: String) -> ApiFailure {
    ApiFailure {
        code,
        reason: reason.into(),
        message,
    }
}

fn selects(obj: &Value, selector: &str) -> bool {
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                == Some(v)
        }
        None => true,
    })
}

impl MemApi {
    /// A fake where `whoami` answers `user`.
    pub fn as_user(user: &str) -> Self {
        Self {
            user: Some(user.into()),
            ..Self::default()
        }
    }

    fn bump(&self) -> String {
        let mut v = self.version.lock().unwrap();
        *v += 1;
        v.to_string()
    }

    /// Store an object at its path (`collection/name`), as a cluster admin would create it.
    pub fn put(&self, collection: &str, mut obj: Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        obj["metadata"]["resourceVersion"] = json!(self.bump());
        self.objects
            .lock()
            .unwrap()
            .insert(format!("{collection}/{name}"), obj);
    }

    /// The object at `path`.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    /// Objects directly under `collection`.
    pub fn objects_in(&self, collection: &str) -> Vec<Value> {
        let prefix = format!("{collection}/");
        self.objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.strip_prefix(&prefix).is_some_and(|n| !n.contains('/')))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Run `hook` on the stored objects right before the first write to a path ending with
    /// `suffix` (another runner acting at that moment).
    pub fn before_write(
        &self,
        suffix: &str,
        hook: impl FnOnce(&mut BTreeMap<String, Value>) + Send + 'static,
    ) {
        self.hooks
            .lock()
            .unwrap()
            .push((suffix.into(), Box::new(hook)));
    }

    /// Fail the next `times` writes to a path ending with `suffix` with `code`.
    pub fn fail_writes(&self, suffix: &str, code: u16, times: usize) {
        self.failures
            .lock()
            .unwrap()
            .push((suffix.into(), code, times, false));
    }

    /// Fail the next `times` reads of a path ending with `suffix` with `code`.
    pub fn fail_reads(&self, suffix: &str, code: u16, times: usize) {
        self.failures
            .lock()
            .unwrap()
            .push((suffix.into(), code, times, true));
    }

    /// The writes made so far: (method, path).
    pub fn writes(&self) -> Vec<(String, String)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m != "GET" && m != "LIST")
            .cloned()
            .collect()
    }

    fn before(&self, method: &str, path: &str) -> Result<(), ApiFailure> {
        self.log.lock().unwrap().push((method.into(), path.into()));
        let read = method == "GET" || method == "LIST";
        if read {
            return self.inject(path, true);
        }
        let hook = {
            let mut hooks = self.hooks.lock().unwrap();
            hooks
                .iter()
                .position(|(s, _)| path.ends_with(s.as_str()))
                .map(|i| hooks.remove(i).1)
        };
        if let Some(hook) = hook {
            let mut objects = self.objects.lock().unwrap();
            let before = objects.clone();
            hook(&mut objects);
            // Whatever the hook changed moved on.
            for (k, o) in objects.iter_mut() {
                if before.get(k) != Some(o) {
                    o["metadata"]["resourceVersion"] = json!(self.bump());
                }
            }
        }
        self.inject(path, false)
    }

    fn inject(&self, path: &str, read: bool) -> Result<(), ApiFailure> {
        let mut failures = self.failures.lock().unwrap();
        if let Some(f) = failures
            .iter_mut()
            .find(|(s, _, n, r)| *n > 0 && *r == read && path.ends_with(s.as_str()))
        {
            f.2 -= 1;
            return Err(api_failure(f.1, "Injected", format!("injected {}", f.1)));
        }
        Ok(())
    }
}

impl Api for MemApi {
    fn get(&self, path: &str) -> Result<Option<Value>, ApiFailure> {
        self.before("GET", path)?;
        Ok(self.object(path))
    }

    fn list(&self, path: &str, selector: Option<&str>) -> Result<Vec<Value>, ApiFailure> {
        self.before("LIST", path)?;
        Ok(self
            .objects_in(path)
            .into_iter()
            .filter(|o| selector.is_none_or(|s| selects(o, s)))
            .collect())
    }

    fn create(&self, path: &str, body: &Value) -> Result<Value, ApiFailure> {
        self.before("POST", path)?;
        let name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = format!("{path}/{name}");
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(&key) {
            return Err(api_failure(409, "AlreadyExists", format!("{name} exists")));
        }
        let mut obj = body.clone();
        obj["metadata"]["resourceVersion"] = json!(self.bump());
        obj["metadata"]["creationTimestamp"] = json!(crate::kube::now());
        objects.insert(key, obj.clone());
        Ok(obj)
    }

    fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiFailure> {
        self.before("PATCH", path)?;
        let (key, status) = match path.strip_suffix("/status") {
            Some(k) => (k, true),
            None => (path, false),
        };
        let mut objects = self.objects.lock().unwrap();
        let Some(obj) = objects.get_mut(key) else {
            return Err(api_failure(404, "NotFound", format!("{key} not found")));
        };
        let mut patch = patch.clone();
        if let Some(want) = patch
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove("resourceVersion"))
            && !want.is_null()
            && obj["metadata"]["resourceVersion"] != want
        {
            return Err(api_failure(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again".into(),
            ));
        }
        // The status subresource changes only status; the main resource never does.
        let effective = if status {
            json!({"status": patch.get("status").cloned().unwrap_or(Value::Null)})
        } else {
            if let Some(p) = patch.as_object_mut() {
                p.remove("status");
            }
            patch
        };
        json_patch::merge(obj, &effective);
        obj["metadata"]["resourceVersion"] = json!(self.bump());
        Ok(obj.clone())
    }

    fn whoami(&self) -> Result<Option<String>, ApiFailure> {
        Ok(self.user.clone())
    }
}
