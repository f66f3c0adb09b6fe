package vm

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// cpioWriter writes the "newc" format the kernel unpacks as initramfs.
type cpioWriter struct {
	w     io.Writer
	ino   int
	dirs  map[string]bool
	files map[string]bool
}

func newCPIO(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{"": true, ".": true, "/": true}, files: map[string]bool{}}
}

func (c *cpioWriter) header(name string, mode uint32, size int) error {
	name = strings.TrimPrefix(name, "/")
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if _, err := io.WriteString(c.w, hdr+name+"\x00"); err != nil {
		return err
	}
	return c.pad(len(hdr) + len(name) + 1)
}

func (c *cpioWriter) pad(n int) error {
	if r := n % 4; r != 0 {
		_, err := c.w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

// mkdirAll adds the directory and its parents once.
func (c *cpioWriter) mkdirAll(dir string) error {
	dir = strings.Trim(filepath.Clean(dir), "/")
	if c.dirs[dir] {
		return nil
	}
	if err := c.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	c.dirs[dir] = true
	return c.header(dir, 0o040755, 0)
}

func (c *cpioWriter) file(name string, mode uint32, data []byte) error {
	return c.entry(name, 0o100000|mode, data)
}

func (c *cpioWriter) symlink(name, target string) error {
	return c.entry(name, 0o120777, []byte(target))
}

// entry adds name once, with its parent directories, the full cpio mode (type
// and permissions) and data (a file's contents, a symlink's target).
func (c *cpioWriter) entry(name string, mode uint32, data []byte) error {
	name = strings.Trim(filepath.Clean(name), "/")
	if c.files[name] {
		return nil
	}
	c.files[name] = true
	if err := c.mkdirAll(filepath.Dir(name)); err != nil {
		return err
	}
	if err := c.header(name, mode, len(data)); err != nil {
		return err
	}
	if _, err := c.w.Write(data); err != nil {
		return err
	}
	return c.pad(len(data))
}

// copyHost adds a host file at the same path. The directory part is resolved (hosts
// with merged /usr have /lib -> usr/lib; the guest gets the same links from
// mergedUsrLinks) while a symlink in the last component is recreated, so that
// multi-call binaries such as xtables-nft-multi still see the name they are called by.
func (c *cpioWriter) copyHost(path string) error {
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return err
	}
	path = filepath.Join(dir, filepath.Base(path))
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		// Point the guest link at the resolved directory: the guest's /bin is
		// busybox's, not the host's /usr/bin.
		tdir, err := filepath.EvalSymlinks(filepath.Dir(target))
		if err != nil {
			return err
		}
		target = filepath.Join(tdir, filepath.Base(target))
		if err := c.symlink(path, target); err != nil {
			return err
		}
		return c.copyHost(target)
	}
	if c.files[strings.Trim(path, "/")] {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return c.file(path, uint32(fi.Mode().Perm()), data)
}

// mergedUsrLinks recreates the host's top-level directory symlinks (/lib -> usr/lib)
// so that library paths from ldd and the dynamic loader resolve in the guest.
func (c *cpioWriter) mergedUsrLinks() error {
	for _, d := range []string{"/lib", "/lib64", "/sbin"} {
		fi, err := os.Lstat(d)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(d)
		if err != nil {
			return err
		}
		if err := c.symlink(d, target); err != nil {
			return err
		}
		c.dirs[strings.Trim(d, "/")] = true
	}
	return nil
}

func (c *cpioWriter) trailer() error {
	return c.header("TRAILER!!!", 0, 0)
}

// moduleClosure returns the module files (relative to the modules dir) for the given
// path prefixes and names, with every dependency modules.dep lists.
func moduleClosure(modDir string, prefixes []string) ([]string, error) {
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if ok {
			deps[mod] = strings.Fields(rest)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	var add func(string)
	add = func(m string) {
		if want[m] {
			return
		}
		want[m] = true
		for _, d := range deps[m] {
			add(d)
		}
	}
	for m := range deps {
		for _, p := range prefixes {
			if strings.HasPrefix(m, p) {
				add(m)
			}
		}
	}
	out := make([]string, 0, len(want))
	for m := range want {
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

// gzipWriter wraps w in gzip at the fastest level: the archive is rebuilt per boot
// and qemu unpacks it, so compression ratio matters less than CPU time.
func gzipWriter(w io.Writer) *gzip.Writer {
	z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	return z
}
