//! The object store: every object by group/resource and namespace/name, one resourceVersion
//! counter for the whole cluster (as etcd's revision), and an event log that watches replay from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::registry::ResourceType;

/// A change to one object.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub type_: &'static str,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub object: Value,
}

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

#[derive(Default)]
pub struct Inner {
    pub types: BTreeMap<(String, String), ResourceType>,
    pub objects: BTreeMap<(String, String), BTreeMap<Key, Value>>,
    pub rv: u64,
    pub log: VecDeque<Arc<Event>>,
}

/// How many events watches can replay from.
const LOG_SIZE: usize = 20_000;

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            inner: Mutex::new(Inner {
                rv: 1000,
                ..Inner::default()
            }),
            tx,
        }
    }

    /// Lock the store. A poisoned lock (a panic while held) is recovered: the data is plain maps.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Record an event (the caller holds the lock and has bumped `rv`).
    pub fn emit(&self, inner: &mut Inner, event: Event) {
        let ev = Arc::new(event);
        inner.log.push_back(ev.clone());
        while inner.log.len() > LOG_SIZE {
            inner.log.pop_front();
        }
        let _ = self.tx.send(ev);
    }
}

impl Inner {
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(group.to_owned(), plural.to_owned()))
            .and_then(|m| m.get(&(ns.to_owned(), name.to_owned())))
    }

    pub fn bucket(&mut self, group: &str, plural: &str) -> &mut BTreeMap<Key, Value> {
        self.objects
            .entry((group.to_owned(), plural.to_owned()))
            .or_default()
    }

    /// Every object of a resource, in one namespace or all (`None`), sorted by namespace and name.
    pub fn list(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        self.objects
            .get(&(group.to_owned(), plural.to_owned()))
            .map(|m| {
                m.iter()
                    .filter(|((n, _), _)| ns.is_none_or(|want| want == n))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The type served for `group`/`plural`, or for a kind name in that group.
    pub fn find_type(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types.get(&(group.to_owned(), plural.to_owned()))
    }
}
