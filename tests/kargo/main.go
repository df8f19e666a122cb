// Test tooling only: Kargo's own URL normalization (github.com/akuity/kargo/pkg/urls, the release
// promote follows), as an oracle for promote_api::urls. Reads one JSON string per line on stdin and
// prints, per line, the JSON array [NormalizeGit, NormalizeChart, NormalizeImage] of it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/akuity/kargo/pkg/urls"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var s string
		if err := json.Unmarshal(in.Bytes(), &s); err != nil {
			fmt.Fprintf(os.Stderr, "kargo-urls: line is not a JSON string: %v\n", err)
			os.Exit(2)
		}
		line, err := json.Marshal([]string{urls.NormalizeGit(s), urls.NormalizeChart(s), urls.NormalizeImage(s)})
		if err != nil {
			fmt.Fprintf(os.Stderr, "kargo-urls: %v\n", err)
			os.Exit(2)
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "kargo-urls: %v\n", err)
		os.Exit(2)
	}
}
