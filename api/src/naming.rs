//! Promotion names: `<stage>.<ulid>.<freight[:7]>`, lowercase, at most 253 characters (Kargo's
//! `GeneratePromotionName`). The ULID makes lexical order equal creation order, which the per-Stage
//! queue relies on.

use crate::Error;

const SHORT_HASH: usize = 7;
const ULID_LEN: usize = 26;
const MAX_NAME: usize = 253;
/// Longest Stage prefix that keeps the whole name within 253 characters.
pub const MAX_STAGE_PREFIX: usize = MAX_NAME - 1 - ULID_LEN - 1 - SHORT_HASH;

/// A Promotion name from a Stage name, a Freight name and a ULID (the caller supplies it, so the
/// function stays pure; use `ulid::Ulid::new()`).
pub fn promotion_name(stage: &str, freight: &str, id: ulid::Ulid) -> Result<String, Error> {
    if stage.is_empty() {
        return Err(Error::PromotionName("the Stage name is empty".to_owned()));
    }
    if freight.is_empty() {
        return Err(Error::PromotionName("the Freight name is empty".to_owned()));
    }
    let short_hash: String = freight.chars().take(SHORT_HASH).collect();
    let prefix: String = stage.chars().take(MAX_STAGE_PREFIX).collect();
    // Kargo's main branch trims separators a cut could leave dangling; a name ending in `.` or `-`
    // before the ULID is still valid DNS-1123, but we follow main for tidier names.
    let prefix = prefix.trim_end_matches(['.', '-']);
    Ok(format!("{prefix}.{id}.{short_hash}").to_lowercase())
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
