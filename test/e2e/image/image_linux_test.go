//go:build linux

package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// dockerfile is what the test takes from the Dockerfile.
type dockerfile struct {
	binPath    string   // COPY --from=build /out/kproxy <binPath>
	entrypoint []string // ENTRYPOINT [...]
	version    string   // ARG VERSION=...
	text       string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{text: string(data)}
	if m := regexp.MustCompile(`(?m)^COPY --from=build /out/kproxy (\S+)$`).FindStringSubmatch(d.text); m != nil {
		d.binPath = m[1]
	}
	if m := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindStringSubmatch(d.text); m != nil {
		if err := json.Unmarshal([]byte(m[1]), &d.entrypoint); err != nil {
			t.Fatalf("Dockerfile ENTRYPOINT: %v", err)
		}
	}
	if m := regexp.MustCompile(`(?m)^ARG VERSION=(\S+)$`).FindStringSubmatch(d.text); m != nil {
		d.version = m[1]
	}
	if d.binPath == "" || len(d.entrypoint) == 0 || d.version == "" {
		t.Fatalf("Dockerfile: want COPY --from=build /out/kproxy <path>, ENTRYPOINT [...] and ARG VERSION=...; got %+v", d)
	}
	return d
}

// The runtime stage carries the tools the modes exec, and the build is static.
func TestDockerfileStages(t *testing.T) {
	d := readDockerfile(t)
	install := regexp.MustCompile(`apt-get install[^&]*`).FindString(d.text)
	for _, pkg := range []string{"iptables", "nftables", "ipset", "conntrack"} {
		if !regexp.MustCompile(`\b` + pkg + `\b`).MatchString(install) {
			t.Errorf("Dockerfile: the runtime stage does not install %s", pkg)
		}
	}
	if !strings.Contains(d.text, "CGO_ENABLED=0 go build") || !strings.Contains(d.text, "-o /out/kproxy ./cmd/kproxy") {
		t.Error("Dockerfile: the build stage must build ./cmd/kproxy with CGO_ENABLED=0 into /out/kproxy")
	}
	if d.entrypoint[0] != d.binPath {
		t.Errorf("ENTRYPOINT %v does not run the copied binary %s", d.entrypoint, d.binPath)
	}
}

// The runtime stage replaces Debian's iptables-nft binary with the one
// scripts/build-iptables.sh builds (chain-name hashes sized for large nodes), at
// the path every iptables-nft name resolves to.
func TestDockerfileShipsTheRebuiltIptables(t *testing.T) {
	d := readDockerfile(t)
	if !regexp.MustCompile(`(?m)^FROM debian:\$\{DEBIAN_VERSION\} AS iptables$`).MatchString(d.text) {
		t.Fatal("Dockerfile: want a stage FROM debian:${DEBIAN_VERSION} AS iptables")
	}
	if !strings.Contains(d.text, "\nCOPY scripts/build-iptables.sh /src/build-iptables.sh\n") {
		t.Error("Dockerfile: the iptables stage must copy scripts/build-iptables.sh to /src")
	}
	run := regexp.MustCompile(`(?m)^RUN sh /src/build-iptables.sh (\S+)$`).FindStringSubmatch(d.text)
	cp := regexp.MustCompile(`(?m)^COPY --from=iptables (\S+) (\S+)$`).FindStringSubmatch(d.text)
	if run == nil || cp == nil {
		t.Fatalf("Dockerfile: want RUN sh /src/build-iptables.sh DEST and COPY --from=iptables DEST/sbin/xtables-nft-multi ...; got %q, %q", run, cp)
	}
	if want := run[1] + "/sbin/xtables-nft-multi"; cp[1] != want {
		t.Errorf("Dockerfile copies %s from the iptables stage; the script installs %s", cp[1], want)
	}
	const target = "/usr/sbin/xtables-nft-multi"
	if cp[2] != target {
		t.Errorf("Dockerfile copies the rebuilt iptables to %s, want %s", cp[2], target)
	}
	if strings.Index(d.text, "AS iptables") > strings.LastIndex(d.text, "\nFROM ") {
		t.Error("Dockerfile: the iptables stage must come before the runtime stage")
	}
	// On a Debian host (the runtime stage's distribution) every iptables-nft
	// name the modes run resolves to that one binary.
	for _, name := range []string{"iptables-nft-restore", "iptables-nft-save", "ip6tables-nft-restore", "ip6tables-nft-save"} {
		p, err := filepath.EvalSymlinks("/usr/sbin/" + name)
		if err != nil {
			continue // not Debian's layout here
		}
		if p != target {
			t.Errorf("/usr/sbin/%s resolves to %s, not %s: the image would run Debian's binary", name, p, target)
		}
	}
}

// buildBinary builds kproxy as the Dockerfile's build stage does (static, the
// version stamped in).
func buildBinary(t *testing.T, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "kproxy")
	// -trimpath would only change file names in the binary, and would rebuild every
	// dependency outside the shared build cache.
	cmd := exec.Command("go", "build",
		"-ldflags", "-s -w -X kproxy.dev/kproxy/internal/cli.Version="+version, "-o", out, "./cmd/kproxy")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// layerWith is a layer holding one executable file at path.
func layerWith(t *testing.T, bin, path string) v1.Layer {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	dir := ""
	for _, part := range strings.Split(strings.Trim(filepath.Dir(path), "/"), "/") {
		dir += part + "/"
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}))
	}
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path, "/"), Mode: 0o755, Size: int64(len(data))}))
	_, err = tw.Write(data)
	must(t, err)
	must(t, tw.Close())
	must(t, f.Close())
	layer, err := tarball.LayerFromFile(tarPath)
	must(t, err)
	return layer
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeLayout writes the image as an OCI image layout and returns its directory.
func writeLayout(t *testing.T, d dockerfile, layer v1.Layer) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layer)
	must(t, err)
	cfg, err := img.ConfigFile()
	must(t, err)
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = d.entrypoint
	img, err = mutate.ConfigFile(img, cfg)
	must(t, err)
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	must(t, err)
	must(t, p.AppendImage(img))
	return dir
}

// extractRootfs reads the layout's only image back and unpacks its filesystem.
func extractRootfs(t *testing.T, dir string) (string, *v1.ConfigFile) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	must(t, err)
	m, err := idx.IndexManifest()
	must(t, err)
	if len(m.Manifests) != 1 {
		t.Fatalf("layout holds %d manifests, want 1", len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	must(t, err)
	cfg, err := img.ConfigFile()
	must(t, err)
	rootfs := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		target := filepath.Join(rootfs, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			must(t, os.MkdirAll(target, 0o755))
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
			must(t, err)
			_, err = io.Copy(f, tr)
			must(t, err)
			must(t, f.Close())
		}
	}
	return rootfs, cfg
}

// runChrooted runs the image's entrypoint with args inside rootfs, which holds only
// what the image's layers hold.
func runChrooted(t *testing.T, rootfs string, cfg *v1.ConfigFile, args ...string) string {
	t.Helper()
	ep := cfg.Config.Entrypoint
	cmd := exec.Command(ep[0], append(ep[1:], args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v %v in the image: %v\n%s", ep, args, err, out)
	}
	return string(out)
}

func TestImageRunsFromItsRootFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	d := readDockerfile(t)
	dir := writeLayout(t, d, layerWith(t, buildBinary(t, d.version), d.binPath))
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	rootfs, cfg := extractRootfs(t, dir)
	if help := runChrooted(t, rootfs, cfg, "--help"); !strings.Contains(help, "--proxy-mode") {
		t.Errorf("kproxy --help in the image does not document --proxy-mode:\n%s", help)
	}
	if v := runChrooted(t, rootfs, cfg, "version"); !strings.Contains(v, d.version) {
		t.Errorf("kproxy version in the image = %q, want %s (the Dockerfile's -X flag names the wrong variable?)", v, d.version)
	}
}
