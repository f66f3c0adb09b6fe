package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"kproxy.dev/kproxy/internal/source"
)

// Budgets of one manifest file, checked before anything is decoded, so that a bad
// file is rejected with a few kilobytes of work instead of hundreds of megabytes.
// docs/sources.md explains each.
const (
	// MaxFileBytes is the largest manifest file read; a kubectl dump of 10,000
	// Services and their slices is about 12 MiB.
	MaxFileBytes = 16 << 20
	// MaxDepth is the deepest nesting of mappings and sequences in a document; a
	// kubectl dump of Services and EndpointSlices nests at most about 10 levels.
	MaxDepth = 64
	// MaxAliasNodes is how many nodes YAML aliases (*name) may add to a document
	// once expanded; kubectl never writes aliases.
	MaxAliasNodes = 10_000
	// MaxAnchors is how many anchors (&name) a document may define.
	MaxAnchors = 1_000
	// MaxSliceEndpoints is the API server's limit on endpoints in one EndpointSlice.
	MaxSliceEndpoints = 1_000
)

// errTooBig is wrapped by readManifest's error for a file over MaxFileBytes.
var errTooBig = errors.New("file too large")

// readManifest reads a file of at most MaxFileBytes; a larger one is not read at all.
func readManifest(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxFileBytes {
		return nil, tooBig(fi.Size())
	}
	// One allocation of the size Stat reported; the file may still grow after Stat,
	// so never read more than the budget.
	data := make([]byte, 0, fi.Size()+1)
	r := io.LimitReader(f, MaxFileBytes+1)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := r.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(data) > MaxFileBytes {
		return nil, tooBig(int64(len(data)))
	}
	return data, nil
}

func tooBig(size int64) error {
	return fmt.Errorf("%w: %d bytes, more than the %d MiB budget (not read)", errTooBig, size, MaxFileBytes>>20)
}

// splitDocuments cuts a file at its "---" lines without copying it, as
// k8s.io/apimachinery's YAMLReader does (empty documents are dropped; a "---" line
// followed by anything but a comment is an error, and ends the file). doc numbers
// the documents returned from 1.
func splitDocuments(data []byte, doc func(n int, b []byte)) error {
	n, start := 0, 0
	emit := func(end int) {
		if end > start {
			n++
			doc(n, data[start:end])
		}
	}
	for pos := 0; pos < len(data); {
		end := bytes.IndexByte(data[pos:], '\n')
		next := len(data)
		if end >= 0 {
			next = pos + end + 1
		}
		line := data[pos:next]
		if bytes.HasPrefix(line, []byte("---")) {
			rest := bytes.TrimSpace(line[3:])
			if len(rest) > 0 && rest[0] != '#' {
				emit(pos)
				return fmt.Errorf("document %d: invalid document separator %q", n+1, source.ClipBytes(rest))
			}
			emit(pos)
			start = next
		}
		pos = next
	}
	emit(len(data))
	return nil
}
