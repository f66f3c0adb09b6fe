package vm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	qemuBinary  = "qemu-system-x86_64"
	busyboxPath = "/bin/busybox"
	beginMarker = "KPROXY-VM-BEGIN"
	endMarker   = "KPROXY-VM-END"
)

// DefaultModules are the module trees (paths relative to lib/modules/VERSION) put into
// the initramfs with their dependencies: netfilter, IPVS and its schedulers, ipset,
// dummy and veth. Everything else of the kernel stays out to keep boots fast.
var DefaultModules = []string{
	"kernel/net/netfilter/",
	"kernel/net/ipv4/netfilter/",
	"kernel/net/ipv6/netfilter/",
	"kernel/net/ipv6/ipv6.ko",
	"kernel/drivers/net/dummy.ko",
	"kernel/drivers/net/veth.ko",
	"kernel/crypto/crc32c_generic.ko", // a soft dependency of libcrc32c (IPVS, nf_nat)
}

// DefaultPrograms are host programs carried into the guest with their shared
// libraries, for the dataplane code that executes them (iptables-restore, ipset).
var DefaultPrograms = []string{
	"/usr/sbin/iptables", "/usr/sbin/iptables-restore", "/usr/sbin/iptables-save",
	"/usr/sbin/ip6tables", "/usr/sbin/ip6tables-restore", "/usr/sbin/ip6tables-save",
	"/usr/sbin/ipset", "/usr/sbin/ip", "/usr/sbin/conntrack",
}

// Options describe one boot.
type Options struct {
	// Files maps a guest path to a host file copied verbatim (static binaries built
	// with BuildBinary or BuildTestBinary, manifests, ...).
	Files map[string]string
	// Data maps a guest path to file contents.
	Data map[string][]byte
	// Programs are dynamically linked host programs carried with their libraries;
	// nil means DefaultPrograms.
	Programs []string
	// Modules are module path prefixes to include; nil means DefaultModules.
	Modules []string
	// Load lists modules modprobe'd before the script runs.
	Load []string
	// Script is the guest shell script (busybox sh); its exit status is the result.
	// Call carried programs by full path: busybox runs its own applets first.
	Script string
	// Timeout bounds the whole boot; 0 means 5 minutes.
	Timeout time.Duration
	// MemoryMB is the guest memory; 0 means 1024.
	MemoryMB int
	// Console receives the raw console as it arrives (e.g. a t.Log writer); may be nil.
	Console io.Writer
	// StampHostCPU prefixes each line sent to Console with the host CPU time qemu
	// has used so far (cpuStamp), a measure of the guest's work that waiting for
	// a loaded host's cores does not inflate. Output and Result.Console stay raw.
	StampHostCPU bool
}

// Result is what a boot produced.
type Result struct {
	// Output is what the script printed (between the markers), CRs removed.
	Output string
	// ExitCode is the script's exit status.
	ExitCode int
	// Console is the whole serial console, for diagnosis.
	Console string
	Elapsed time.Duration
}

// Run builds the initramfs, boots the kernel and waits for the script to finish.
// An error means the guest never reported a result (boot failure, crash, timeout).
func Run(ctx context.Context, k Kernel, o Options) (*Result, error) {
	res, err := boot(ctx, k, o)
	if err != nil && res != nil && !strings.Contains(res.Console, beginMarker) && ctx.Err() == nil {
		// The kernel died before running the script (an emulation hiccup on a
		// loaded host): boot once more rather than fail the tests it carries.
		if o.Console != nil {
			fmt.Fprintln(o.Console, "vm: boot failed before the script started; retrying once")
		}
		return boot(ctx, k, o)
	}
	return res, err
}

func boot(ctx context.Context, k Kernel, o Options) (*Result, error) {
	work, err := os.MkdirTemp("", "kproxy-vm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	initrd := filepath.Join(work, "initrd.gz")
	if err := buildInitramfs(k, o, initrd); err != nil {
		return nil, fmt.Errorf("vm: initramfs: %w", err)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	mem := o.MemoryMB
	if mem == 0 {
		mem = 1024
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBinary, "-accel", "tcg", "-m", strconv.Itoa(mem),
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", "-display", "none",
		"-kernel", k.Vmlinuz(), "-initrd", initrd,
		// no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer
		// check can fail and panic the boot ("IO-APIC + timer doesn't work").
		"-append", "console=ttyS0 quiet panic=-1 oops=panic no_timer_check")
	cmd.Stdin = nil
	var console bytes.Buffer
	var mu sync.Mutex
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vm: start qemu: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			mu.Lock()
			console.WriteString(line + "\n")
			mu.Unlock()
			switch {
			case o.Console != nil && o.StampHostCPU:
				fmt.Fprintln(o.Console, cpuStamp(cmd.Process.Pid, line))
			case o.Console != nil:
				fmt.Fprintln(o.Console, line)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	werr := cmd.Wait()
	pw.Close()
	<-done
	res := &Result{Console: console.String(), Elapsed: time.Since(start)}
	out, code, ok := parseConsole(res.Console)
	if !ok {
		if ctx.Err() != nil {
			return res, fmt.Errorf("vm: timed out after %v: %w", timeout, errNoMarker)
		}
		return res, fmt.Errorf("vm: qemu: %v: %w", werr, errNoMarker)
	}
	res.Output, res.ExitCode = out, code
	return res, nil
}

var endRE = regexp.MustCompile(endMarker + ` rc=(\d+)`)

func parseConsole(console string) (out string, code int, ok bool) {
	i := strings.Index(console, beginMarker+"\n")
	if i < 0 {
		return "", 0, false
	}
	rest := console[i+len(beginMarker)+1:]
	loc := endRE.FindStringSubmatchIndex(rest)
	if loc == nil {
		return "", 0, false
	}
	code, _ = strconv.Atoi(rest[loc[2]:loc[3]])
	return rest[:loc[0]], code, true
}

// initScript mounts the pseudo filesystems, loads modules, runs the user script
// between markers and powers off. The kernel runs modprobe from the same busybox for
// modules requested on demand (IPVS schedulers, nft expressions).
func initScript(o Options) string {
	var b strings.Builder
	b.WriteString(`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mkdir -p /run /var/run /dev/pts /etc
mount -t tmpfs run /run
echo /bin/modprobe > /proc/sys/kernel/modprobe
echo 1 > /proc/sys/kernel/panic_on_oops
hostname kproxy-vm
ip link set lo up
modprobe crc32c_generic 2>/dev/null
`)
	for _, m := range o.Load {
		fmt.Fprintf(&b, "modprobe %s || echo 'vm: modprobe %s failed'\n", m, m)
	}
	b.WriteString("cat > /tmp/script.sh <<'KPROXY_SCRIPT_EOF'\n")
	b.WriteString(o.Script)
	b.WriteString("\nKPROXY_SCRIPT_EOF\n")
	fmt.Fprintf(&b, "echo %s\nsh /tmp/script.sh 2>&1\nrc=$?\necho\necho \"%s rc=$rc\"\npoweroff -f\n", beginMarker, endMarker)
	return b.String()
}

func buildInitramfs(k Kernel, o Options, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	z := gzipWriter(bw)
	c := newCPIO(z)
	if err := fillInitramfs(c, k, o); err != nil {
		return err
	}
	if err := c.trailer(); err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func fillInitramfs(c *cpioWriter, k Kernel, o Options) error {
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "usr/bin", "usr/sbin", "usr/lib", "usr/local/bin"} {
		if err := c.mkdirAll(d); err != nil {
			return err
		}
	}
	if err := c.mergedUsrLinks(); err != nil {
		return err
	}
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return err
	}
	if err := c.file("bin/busybox", 0o755, bb); err != nil {
		return err
	}
	if err := c.symlink("bin/sh", "busybox"); err != nil {
		return err
	}
	if err := c.file("init", 0o755, []byte(initScript(o))); err != nil {
		return err
	}
	if err := addModules(c, k, o.Modules); err != nil {
		return err
	}
	progs := o.Programs
	if progs == nil {
		progs = DefaultPrograms
	}
	if err := carryPrograms(c, progs); err != nil {
		return err
	}
	for guest, host := range o.Files {
		data, err := os.ReadFile(host)
		if err != nil {
			return err
		}
		if err := c.file(guest, 0o755, data); err != nil {
			return err
		}
	}
	for guest, data := range o.Data {
		if err := c.file(guest, 0o644, data); err != nil {
			return err
		}
	}
	return nil
}

func addModules(c *cpioWriter, k Kernel, prefixes []string) error {
	if prefixes == nil {
		prefixes = DefaultModules
	}
	mods, err := moduleClosure(k.ModulesDir(), prefixes)
	if err != nil {
		return err
	}
	guestDir := filepath.Join("lib/modules", k.Version)
	for _, m := range mods {
		data, err := os.ReadFile(filepath.Join(k.ModulesDir(), m))
		if err != nil {
			return err
		}
		if err := c.file(filepath.Join(guestDir, m), 0o644, data); err != nil {
			return err
		}
	}
	for _, meta := range []string{"modules.dep", "modules.alias", "modules.symbols", "modules.builtin", "modules.order"} {
		data, err := os.ReadFile(filepath.Join(k.ModulesDir(), meta))
		if err != nil {
			continue
		}
		if err := c.file(filepath.Join(guestDir, meta), 0o644, data); err != nil {
			return err
		}
	}
	return nil
}
