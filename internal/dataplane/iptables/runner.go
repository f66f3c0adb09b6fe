package iptables

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Backend is the iptables flavour a node uses.
type Backend string

const (
	BackendNFT    Backend = "nft"
	BackendLegacy Backend = "legacy"
)

// BackendEnv forces a backend ("nft" or "legacy") instead of detecting it.
const BackendEnv = "KPROXY_IPTABLES_BACKEND"

// Runner is the narrow interface to the iptables tools; unit tests use a fake that
// records restore input, everything else uses ExecRunner.
type Runner interface {
	// Restore feeds input to iptables-restore. noflush keeps what the input does
	// not mention (kproxy always uses it; the benchmark baseline does not).
	Restore(ctx context.Context, input []byte, noflush bool) error
	// Save returns iptables-save output for one table, or every table when table
	// is "".
	Save(ctx context.Context, table string) ([]byte, error)
	// ListChain returns a chain's rules ("-A ..." lines), and whether it exists.
	ListChain(ctx context.Context, table, chain string) ([]string, bool, error)
}

// restoreInput is restore input that can be written out piecewise (see
// streamRestorer) or rendered whole.
type restoreInput interface {
	io.WriterTo
	Bytes() []byte
}

// streamRestorer is a Runner that writes the input to iptables-restore as it is
// rendered, so that the whole of it (16 MB at 10,000 Services) is never held.
type streamRestorer interface {
	restoreStream(ctx context.Context, input restoreInput, noflush bool) error
}

// restoreWith feeds input to r, as a stream when r takes one.
func restoreWith(ctx context.Context, r Runner, input restoreInput) error {
	if s, ok := r.(streamRestorer); ok {
		return s.restoreStream(ctx, input, true)
	}
	return r.Restore(ctx, input.Bytes(), true)
}

// ExecRunner runs the iptables binaries of one backend and one family.
type ExecRunner struct {
	Backend Backend
	// IPv6 runs ip6tables-<backend>-restore/-save instead of iptables-*.
	IPv6 bool
	// Wrap prefixes every command, e.g. {"ip", "netns", "exec", "NAME"} in tests.
	Wrap []string
}

// bin is the tool's binary: iptables-nft-restore, ip6tables-legacy-save, ...
func (r ExecRunner) bin(tool string) string {
	if r.IPv6 {
		return "ip6tables-" + string(r.Backend) + tool
	}
	return "iptables-" + string(r.Backend) + tool
}

func (r ExecRunner) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if len(r.Wrap) > 0 {
		args = append(append(append([]string{}, r.Wrap[1:]...), name), args...)
		name = r.Wrap[0]
	}
	return exec.CommandContext(ctx, name, args...)
}

// Restore runs `iptables-restore -w 5 [--noflush] --counters` with input on stdin.
// A failure quotes the lines around the one iptables names.
func (r ExecRunner) Restore(ctx context.Context, input []byte, noflush bool) error {
	args := []string{"-w", "5", "--counters"}
	if noflush {
		args = []string{"-w", "5", "--noflush", "--counters"}
	}
	cmd := r.command(ctx, r.bin("-restore"), args...)
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return &RestoreError{Tool: r.bin("-restore"), Err: err, Stderr: strings.TrimSpace(stderr.String()), Context: failureContext(input, stderr.String())}
	}
	return nil
}

// restoreStream is Restore with the input written to the tool's stdin as it is
// rendered. iptables-restore commits each table at its COMMIT line, so a stream cut
// short commits no more than a whole input the tool rejects halfway; a stream
// that cannot be written out kills the tool before it reads to the end. A failure
// renders the input again to quote the lines around the one iptables names.
func (r ExecRunner) restoreStream(ctx context.Context, input restoreInput, noflush bool) error {
	args := []string{"-w", "5", "--counters"}
	if noflush {
		args = []string{"-w", "5", "--noflush", "--counters"}
	}
	cmd := r.command(ctx, r.bin("-restore"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		return &RestoreError{Tool: r.bin("-restore"), Err: err}
	}
	_, werr := input.WriteTo(stdin)
	if werr != nil {
		_ = cmd.Process.Kill()
	}
	_ = stdin.Close()
	err = cmd.Wait()
	if err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return &RestoreError{Tool: r.bin("-restore"), Err: err, Stderr: strings.TrimSpace(stderr.String()), Context: failureContext(input.Bytes(), stderr.String())}
	}
	return nil
}

// Save runs iptables-save for one table.
func (r ExecRunner) Save(ctx context.Context, table string) ([]byte, error) {
	var args []string
	if table != "" {
		args = []string{"-t", table}
	}
	cmd := r.command(ctx, r.bin("-save"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -t %s: %w: %s", r.bin("-save"), table, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// ListChain returns the rules of one chain as `iptables -S` prints them, and false
// when the chain does not exist (iptables exits 1).
func (r ExecRunner) ListChain(ctx context.Context, table, chain string) ([]string, bool, error) {
	cmd := r.command(ctx, r.bin(""), "-w", "5", "-t", table, "-S", chain)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		var rules []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "-A ") {
				rules = append(rules, l)
			}
		}
		return rules, true, nil
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("%s -t %s -S %s: %w: %s", r.bin(""), table, chain, err, stderr.String())
}

// RestoreError is a failed iptables-restore, with the input lines around the one
// it complained about.
type RestoreError struct {
	Tool    string // iptables-nft-restore, ip6tables-legacy-restore, ...
	Err     error
	Stderr  string
	Context string
}

func (e *RestoreError) Error() string {
	tool := e.Tool
	if tool == "" {
		tool = "iptables-restore"
	}
	msg := tool + " failed: " + e.Err.Error() + ": " + e.Stderr
	if e.Context != "" {
		msg += "; input near the failure:\n" + e.Context
	}
	return msg
}

func (e *RestoreError) Unwrap() error { return e.Err }

// failureContext returns the three lines around the line number iptables-restore
// reports ("line 12 failed" or "Error occurred at line: 12").
func failureContext(input []byte, stderr string) string {
	n := 0
	for _, key := range []string{"line: ", "line "} {
		if i := strings.Index(stderr, key); i >= 0 {
			fmt.Sscanf(stderr[i+len(key):], "%d", &n)
			if n > 0 {
				break
			}
		}
	}
	if n <= 0 {
		return ""
	}
	lines := strings.Split(string(input), "\n")
	var out []string
	for i := n - 2; i <= n; i++ {
		if i >= 0 && i < len(lines) {
			out = append(out, fmt.Sprintf("%d: %s", i+1, lines[i]))
		}
	}
	return strings.Join(out, "\n")
}

// DetectBackend picks the backend as kube-proxy's wrapper does: the one whose
// tables already hold more rules (kubelet and the CNI plugin wrote them), nft when
// neither does. BackendEnv overrides the choice.
func DetectBackend(ctx context.Context) (Backend, error) {
	switch v := os.Getenv(BackendEnv); v {
	case "":
	case string(BackendNFT), string(BackendLegacy):
		return Backend(v), nil
	default:
		return "", fmt.Errorf("%s=%q: want %q or %q", BackendEnv, v, BackendNFT, BackendLegacy)
	}
	nft := countRules(ctx, ExecRunner{Backend: BackendNFT})
	legacy := countRules(ctx, ExecRunner{Backend: BackendLegacy})
	if legacy > nft {
		return BackendLegacy, nil
	}
	if nft < 0 && legacy < 0 {
		return "", fmt.Errorf("neither iptables-nft-save nor iptables-legacy-save works: install iptables")
	}
	if nft < 0 {
		return BackendLegacy, nil
	}
	return BackendNFT, nil
}

// countRules counts rule and chain lines visible to one backend and family, -1 if
// its tool fails.
func countRules(ctx context.Context, r ExecRunner) int {
	out, err := r.command(ctx, r.bin("-save")).Output()
	if err != nil {
		return -1
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A ") || (strings.HasPrefix(l, ":KUBE-")) {
			n++
		}
	}
	return n
}
