//! Promotion names: `<stage>.<ulid>.<freight[:7]>`, lowercase, at most 253 characters (Kargo's
//! `GeneratePromotionName`). The ULID makes lexical order equal creation order, which the per-Stage
//! queue relies on.

use crate::Error;

const SHORT_HASH: usize = 7;
const ULID_LEN: usize = 26;
const MAX_NAME: usize = 253;
/// Longest Stage prefix that keeps the whole name within 253 characters.
pub const MAX_STAGE_PREFIX: usize = MAX_NAME - 1 - ULID_LEN - 1 - SHORT_HASH;

/// The short form of a Freight name people read (its first 7 characters), as in Promotion names.
pub fn short_name(name: &str) -> &str {
    name.char_indices()
        .nth(SHORT_HASH)
        .map_or(name, |(i, _)| &name[..i])
}

/// A Promotion name from a Stage name, a Freight name and a ULID (the caller supplies it, so the
/// function stays pure; use `ulid::Ulid::new()`).
pub fn promotion_name(stage: &str, freight: &str, id: ulid::Ulid) -> Result<String, Error> {
    if stage.is_empty() {
        return Err(Error::PromotionName("the Stage name is empty".to_owned()));
    }
    if freight.is_empty() {
        return Err(Error::PromotionName("the Freight name is empty".to_owned()));
    }
    let short_hash = short_name(freight);
    let prefix: String = stage.chars().take(MAX_STAGE_PREFIX).collect();
    // Kargo's main branch trims separators a cut could leave dangling; a name ending in `.` or `-`
    // before the ULID is still valid DNS-1123, but we follow main for tidier names.
    let prefix = prefix.trim_end_matches(['.', '-']);
    Ok(format!("{prefix}.{id}.{short_hash}").to_lowercase())
}

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "curious", "daring",
    "eager", "early", "fancy", "fierce", "fluffy", "frosty", "gentle", "giddy", "golden", "grand",
    "happy", "hasty", "humble", "icy", "jolly", "keen", "kind", "lively", "lucky", "mellow",
    "merry", "mighty", "misty", "nimble", "noble", "odd", "plucky", "polite", "proud", "quick",
    "quiet", "rapid", "rosy", "rustic", "shiny", "silent", "silly", "sleepy", "snappy", "solar",
    "spicy", "steady", "stormy", "sunny", "swift", "tidy", "upbeat", "vivid", "wacky", "warm",
    "wild", "wise", "witty", "zesty",
];

const ANIMALS: &[&str] = &[
    "alpaca", "badger", "beaver", "bison", "bobcat", "camel", "cheetah", "coyote", "crane",
    "dingo", "dolphin", "eagle", "falcon", "ferret", "finch", "gazelle", "gecko", "gopher",
    "heron", "hippo", "ibex", "iguana", "jackal", "jaguar", "koala", "lemur", "llama", "lynx",
    "marmot", "meerkat", "moose", "narwhal", "newt", "ocelot", "otter", "owl", "panda", "parrot",
    "pelican", "penguin", "puffin", "quokka", "rabbit", "raven", "salmon", "seal", "sloth",
    "sparrow", "squid", "stork", "tapir", "tiger", "toucan", "turtle", "urchin", "vulture",
    "walrus", "weasel", "whale", "wombat", "yak", "zebra", "hornet", "mantis",
];

/// A human alias for Freight (`adjective-animal`, Kargo's style), derived from its name:
/// `attempt` 0, 1, ... walk through other aliases when one is taken in the project.
pub fn freight_alias(freight: &str, attempt: usize) -> String {
    let seed = freight
        .get(..12)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| {
            freight.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
        });
    let n = (ADJECTIVES.len() * ANIMALS.len()) as u64;
    // Step by a large odd number so successive attempts land far apart.
    let i = (seed.wrapping_add(attempt as u64 * 2_654_435_761)) % n;
    let (a, b) = ((i as usize) / ANIMALS.len(), (i as usize) % ANIMALS.len());
    format!("{}-{}", ADJECTIVES[a], ANIMALS[b])
}

/// The `kargo.akuity.io/stage` label value for a Stage name (cut to 63 characters, ending
/// alphanumeric, as label values must).
pub fn stage_label(stage: &str) -> String {
    let cut: String = stage.chars().take(63).collect();
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The ULID embedded in a Promotion name, if it has one.
pub fn ulid_of(name: &str) -> Option<ulid::Ulid> {
    let mut parts = name.rsplitn(3, '.');
    let _hash = parts.next()?;
    let id = parts.next()?;
    ulid::Ulid::from_string(&id.to_uppercase()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freight_aliases_are_stable_and_walk_on_collision() {
        let id = "be79d3d863f2323dd406cff7a99de434892f8740";
        let a0 = freight_alias(id, 0);
        assert_eq!(a0, freight_alias(id, 0));
        assert_ne!(a0, freight_alias(id, 1));
        assert!(
            crate::validation::is_label_value(&a0) && a0.contains('-'),
            "{a0}"
        );
        let distinct: std::collections::BTreeSet<String> =
            (0..50).map(|i| freight_alias(id, i)).collect();
        assert_eq!(distinct.len(), 50);
    }

    fn id() -> ulid::Ulid {
        ulid::Ulid::from_parts(1_700_000_000_000, 42)
    }

    #[test]
    fn shape() {
        let n = promotion_name("test", "be79d3d863f2323dd406cff7a99de434892f8740", id())
            .unwrap_or_default();
        assert_eq!(
            n,
            format!("test.{}.be79d3d", id().to_string().to_lowercase())
        );
        assert_eq!(ulid_of(&n), Some(id()));
    }

    #[test]
    fn long_stage_is_cut_to_253() {
        let stage = "a".repeat(300);
        let n = promotion_name(&stage, "0123456789", id()).unwrap_or_default();
        assert_eq!(n.len(), 253);
        assert!(n.ends_with(".0123456"));
        let stage = format!("{}-{}", "a".repeat(MAX_STAGE_PREFIX - 1), "b");
        let n = promotion_name(&stage, "f", id()).unwrap_or_default();
        assert!(!n.contains("-."), "{n}");
    }

    #[test]
    fn lowercase_and_errors() {
        let n = promotion_name("Test", "ABCDEF0123", id()).unwrap_or_default();
        assert_eq!(n, n.to_lowercase());
        assert!(promotion_name("", "x", id()).is_err());
        assert!(promotion_name("x", "", id()).is_err());
    }

    #[test]
    fn names_sort_in_creation_order() {
        let a = promotion_name("s", "f", ulid::Ulid::from_parts(1, 0)).unwrap_or_default();
        let b = promotion_name("s", "f", ulid::Ulid::from_parts(2, 0)).unwrap_or_default();
        assert!(a < b);
    }
}
