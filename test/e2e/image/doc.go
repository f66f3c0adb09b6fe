// Package image checks the container image the Dockerfile describes without a
// Docker daemon: it builds the binary as the Dockerfile's build stage does, puts it
// at the Dockerfile's path in a layer, writes an OCI image layout with
// go-containerregistry, reads the layout back, extracts the root filesystem and runs
// the entrypoint chrooted into it. The chroot holds nothing but the binary, which
// proves it static (the runtime stage adds only Debian's tools).
package image
