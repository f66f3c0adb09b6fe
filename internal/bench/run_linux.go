//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"github.com/vishvananda/netns"
)

// ChildCommand is the hidden `kproxy bench` subcommand that runs Measure inside
// the namespace; the parent passes the Spec as JSON in ChildSpecFlag.
const (
	ChildCommand  = "measure-in-netns"
	ChildSpecFlag = "spec"
)

// ChildReply is what the child prints on stdout: a result, or an error with its stage.
type ChildReply struct {
	Result *Result `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`
	Stage  Stage   `json:"stage,omitempty"`
}

// RunOptions say how to run one measurement in fresh namespaces.
type RunOptions struct {
	// Exe is the kproxy binary to re-exec; "" means this very binary.
	Exe string
	// Prefix names the namespaces; "" means "compare-<pid>-<k>".
	Prefix string
	// Progress receives the child's progress lines (stderr).
	Progress io.Writer
}

var envSeq atomic.Int64

// Run creates private namespaces, re-execs kproxy inside the node namespace to
// measure s there, and deletes the namespaces again, whatever happened.
func Run(ctx context.Context, s Spec, o RunOptions) (res *Result, err error) {
	if os.Geteuid() != 0 {
		return nil, stageErr(StageSetup, errors.New("bench must run as root: it creates network namespaces and programs the kernel inside them"))
	}
	exe := o.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, stageErr(StageSetup, err)
		}
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = fmt.Sprintf("compare-%d-%d", os.Getpid(), envSeq.Add(1))
	}
	env, err := NewEnv(prefix)
	if err != nil {
		return nil, stageErr(StageSetup, err)
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	return runChild(ctx, env, exe, s, o.Progress)
}

func runChild(ctx context.Context, env *Env, exe string, s Spec, progress io.Writer) (*Result, error) {
	s.Netns = env.NodeName
	spec, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, exe, "bench", ChildCommand, "--"+ChildSpecFlag, string(spec))
	cmd.Stdout = &stdout
	cmd.Stderr = progress
	if progress == nil {
		cmd.Stderr = io.Discard
	}
	// The connect client must not be interrupted by the runtime's preemption signal.
	// A GODEBUG of the caller (gctrace=1, say) is kept.
	godebug := "asyncpreemptoff=1"
	if v := os.Getenv("GODEBUG"); v != "" {
		godebug = v + "," + godebug
	}
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug)
	if err := env.Start(cmd); err != nil {
		return nil, stageErr(StageSetup, fmt.Errorf("start %s in %s: %w", exe, env.NodeName, err))
	}
	werr := cmd.Wait()
	var reply ChildReply
	if err := json.Unmarshal(stdout.Bytes(), &reply); err != nil {
		if werr != nil {
			return nil, stageErr(StageSetup, fmt.Errorf("measurement process: %w", werr))
		}
		return nil, stageErr(StageSetup, fmt.Errorf("measurement process printed no result: %w (%q)", err, strings.TrimSpace(stdout.String())))
	}
	if reply.Error != "" {
		return nil, stageErr(reply.Stage, errors.New(reply.Error))
	}
	if reply.Result == nil {
		return nil, stageErr(StageSetup, errors.New("measurement process printed an empty result"))
	}
	return reply.Result, nil
}

// ChildMain is the body of the hidden child command: measure, print a ChildReply.
func ChildMain(ctx context.Context, specJSON string, stdout, progress io.Writer) error {
	var s Spec
	var reply ChildReply
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		reply = ChildReply{Error: fmt.Sprintf("bad --%s: %v", ChildSpecFlag, err), Stage: StageSetup}
	} else if err := checkNetns(s.Netns); err != nil {
		reply = ChildReply{Error: err.Error(), Stage: StageSetup}
	} else if res, err := Measure(ctx, s, progress); err != nil {
		reply = ChildReply{Error: err.Error(), Stage: StageOf(err)}
	} else {
		reply = ChildReply{Result: res}
	}
	return json.NewEncoder(stdout).Encode(reply)
}

// checkNetns makes sure this process runs in the named bench namespace, so the
// hidden child command can never program the firewall of the host by mistake.
func checkNetns(name string) error {
	if name == "" {
		return errors.New("refusing to measure: no bench network namespace named")
	}
	want, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("refusing to measure: network namespace %s: %w", name, err)
	}
	defer want.Close()
	self, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	if !self.Equal(want) {
		return fmt.Errorf("refusing to measure: this process is not inside network namespace %s", name)
	}
	return nil
}
