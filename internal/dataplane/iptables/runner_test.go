package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigRestore is a restore input of several restoreChunks.
func bigRestore() *restoreBuilder {
	b := newRestoreBuilder()
	for i := range 3000 {
		b.table(tableNAT).writeChain(fmt.Sprintf("KPROXY-SVC-%04d", i), []string{
			fmt.Sprintf("-m comment --comment \"ns/svc-%d:http\" -j KPROXY-SEP-%04d", i, i)})
	}
	return b
}

// fakeTool runs script with sh in place of iptables-restore.
func fakeTool(script string) ExecRunner {
	return ExecRunner{Backend: BackendNFT, Wrap: []string{"sh", "-c", script, "sh"}}
}

func TestRestoreStreamWritesWhatBytesRenders(t *testing.T) {
	b := bigRestore()
	want := b.Bytes()
	if len(want) < 3*restoreChunk {
		t.Fatalf("input of %d bytes: too small to cross chunks", len(want))
	}
	out := filepath.Join(t.TempDir(), "in")
	if err := restoreWith(context.Background(), fakeTool("cat > "+out), b); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the tool read %d bytes, Bytes renders %d; they differ", len(got), len(want))
	}
}

func TestRestoreStreamFailureQuotesTheLine(t *testing.T) {
	b := bigRestore()
	err := restoreWith(context.Background(), fakeTool("head -n 5 >/dev/null; echo 'iptables-restore: line 4 failed' >&2; exit 1"), b)
	var re *RestoreError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want a RestoreError", err)
	}
	line4 := strings.Split(string(b.Bytes()), "\n")[3]
	if !strings.Contains(re.Context, "4: "+line4) || !strings.Contains(re.Stderr, "line 4 failed") {
		t.Fatalf("context %q, stderr %q; want line 4 (%q) quoted", re.Context, re.Stderr, line4)
	}
}

func TestRestoreStreamToolGoneEarly(t *testing.T) {
	// The tool exits without reading: the write fails and the error says so,
	// instead of blocking on a full pipe.
	err := restoreWith(context.Background(), fakeTool("exit 3"), bigRestore())
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("error %v, want the tool's exit status", err)
	}
}
