//go:build tools

// Package pobuild only records (for go.mod/go.sum) the command hack/tools/60-prometheus-operator.sh builds.
package pobuild

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
)
