// Embeds the commit `--version` prints (see build/version.rs).
include!("../build/version.rs");
