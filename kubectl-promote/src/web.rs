//! The HTTP client configuration (ureq) shared by the HTTP steps (`http`, `http-download`) and
//! chart discovery (`index.yaml`), so they treat statuses, deadlines and TLS alike.

use std::time::Duration;

/// The HTTP client configuration the HTTP steps and chart discovery share: statuses are answers,
/// not errors; one deadline for the whole exchange; TLS verification off only when asked.
pub fn agent_config(
    timeout: Duration,
    insecure_skip_tls_verify: bool,
) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout));
    if insecure_skip_tls_verify {
        builder.tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        )
    } else {
        builder
    }
}
