// Test tooling only: Kargo's own pkg/urls, built as the oracle the URL normalization tests compare
// promote_api::urls with (scripts/kube-build --kargo-urls). Nothing here ships.
module promote.dev/tests/kargo

go 1.26.0

require github.com/akuity/kargo v1.11.2

require (
	github.com/google/go-containerregistry v0.20.7 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
)
