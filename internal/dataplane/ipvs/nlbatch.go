//go:build linux

package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nlSocket sends many netlink requests in one sendmsg. The kernel handles the
// messages of a datagram in order, inside the sendmsg call, and answers a request
// without NLM_F_ACK only when it fails; so a chunk asks for an ack on its last
// message alone, and once that ack (or that message's error) is read, every error
// of the chunk has been read before it. Each request still gets its own result.
// Used from one goroutine at a time (the Proxier's mutex).
type nlSocket struct {
	fd  int
	seq uint32
	buf []byte
}

// nlRequest is one netlink message: type, flags besides NLM_F_REQUEST (and the
// NLM_F_ACK the socket adds), and the payload after the nlmsghdr.
type nlRequest struct {
	Type  uint16
	Flags uint16
	Data  []byte
}

// Chunk limits: a chunk's requests go in one datagram (well below the default
// socket send buffer), and in the worst case, when all of them fail, their errors
// must fit in the receive buffer.
const (
	chunkMaxMsgs  = 256
	chunkMaxBytes = 64 << 10
	nlmsgHdrLen   = 16
)

// openNetlink opens a blocking netlink socket of protocol proto (unix.NETLINK_*)
// in the caller's network namespace.
func openNetlink(proto int) (*nlSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// Room for a chunk's errors; FORCE passes rmem_max as root.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	// Errors carry the failed request's header only, plus the kernel's message.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	// The kernel answers within sendmsg; a missing answer must not hang a sync.
	tv := unix.Timeval{Sec: 30}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &nlSocket{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (s *nlSocket) Close() error { return unix.Close(s.fd) }

// exec sends reqs in chunks and returns one error per request (nil: done).
func (s *nlSocket) exec(reqs []nlRequest) []error {
	errs := make([]error, len(reqs))
	for start := 0; start < len(reqs); {
		end, size := start, 0
		for end < len(reqs) && end-start < chunkMaxMsgs {
			n := msgLen(reqs[end])
			if end > start && size+n > chunkMaxBytes {
				break
			}
			size += n
			end++
		}
		s.chunk(reqs[start:end], errs[start:end], size)
		start = end
	}
	return errs
}

func msgLen(r nlRequest) int { return nlmsgHdrLen + nlAlign(len(r.Data)) }

func nlAlign(n int) int { return (n + 3) &^ 3 }

// chunk sends reqs in one datagram and reads their errors and the final ack.
func (s *nlSocket) chunk(reqs []nlRequest, errs []error, size int) {
	first := s.seq + 1
	b := make([]byte, 0, size)
	for i, r := range reqs {
		s.seq++
		flags := r.Flags | unix.NLM_F_REQUEST
		if i == len(reqs)-1 {
			flags |= unix.NLM_F_ACK
		}
		b = appendMsg(b, r.Type, flags, s.seq, r.Data)
	}
	last := s.seq
	if err := unix.Sendto(s.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("netlink send: %w", err)
		}
		return
	}
	for {
		msgs, err := s.receive()
		if err != nil {
			// Errors may have been dropped (ENOBUFS) or never come: nothing in the
			// chunk is known to be done.
			for i := range errs {
				if errs[i] == nil {
					errs[i] = fmt.Errorf("netlink: no acknowledgement, state unknown: %w", err)
				}
			}
			return
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq < first || m.Header.Seq > last {
				continue // stale, from a chunk that timed out
			}
			if err := ackError(m); err != nil {
				errs[m.Header.Seq-first] = err
			}
			if m.Header.Seq == last {
				return
			}
		}
	}
}

// query sends one request (a GET) and returns the payloads of its answers.
func (s *nlSocket) query(r nlRequest) ([][]byte, error) {
	s.seq++
	seq := s.seq
	b := appendMsg(nil, r.Type, r.Flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, r.Data)
	if err := unix.Sendto(s.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	var out [][]byte
	for {
		msgs, err := s.receive()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				return out, ackError(m)
			case unix.NLMSG_DONE:
				return out, nil
			default:
				out = append(out, append([]byte(nil), m.Data...))
			}
		}
	}
}

func (s *nlSocket) receive() ([]syscall.NetlinkMessage, error) {
	for {
		n, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		return syscall.ParseNetlinkMessage(s.buf[:n])
	}
}

func appendMsg(b []byte, typ, flags uint16, seq uint32, data []byte) []byte {
	var h [nlmsgHdrLen]byte
	binary.NativeEndian.PutUint32(h[0:4], uint32(nlmsgHdrLen+len(data)))
	binary.NativeEndian.PutUint16(h[4:6], typ)
	binary.NativeEndian.PutUint16(h[6:8], flags)
	binary.NativeEndian.PutUint32(h[8:12], seq)
	// h[12:16], the port id, stays 0: the kernel fills in the sender's.
	b = append(b, h[:]...)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// nlError is a request the kernel refused, with its extended-ack message if any.
type nlError struct {
	Errno syscall.Errno
	Msg   string
}

func (e *nlError) Error() string {
	if e.Msg == "" {
		return e.Errno.Error()
	}
	return e.Errno.Error() + ": " + e.Msg
}

func (e *nlError) Unwrap() error { return e.Errno }

// NLM_F_CAPPED and NLM_F_ACK_TLVS flag an NLMSG_ERROR (include/uapi/linux/netlink.h).
const (
	nlmFCapped  = 0x100
	nlmFAckTLVs = 0x200
	nlmsgerrMsg = 1 // NLMSGERR_ATTR_MSG
)

// ackError reads an NLMSG_ERROR: nil for an ack, else the errno and the message.
func ackError(m syscall.NetlinkMessage) error {
	if len(m.Data) < 4 {
		return errors.New("netlink: short error message")
	}
	code := int32(binary.NativeEndian.Uint32(m.Data[0:4]))
	if code == 0 {
		return nil
	}
	e := &nlError{Errno: syscall.Errno(-code)}
	if m.Header.Flags&nlmFAckTLVs == 0 || len(m.Data) < 4+nlmsgHdrLen {
		return e
	}
	off := 4 + nlmsgHdrLen
	if m.Header.Flags&nlmFCapped == 0 {
		off = 4 + nlAlign(int(binary.NativeEndian.Uint32(m.Data[4:8])))
	}
	if off >= len(m.Data) {
		return e
	}
	attrs, err := netlink.UnmarshalAttributes(m.Data[off:])
	if err != nil {
		return e
	}
	for _, a := range attrs {
		if a.Type == nlmsgerrMsg {
			e.Msg = string(trimNUL(a.Data))
		}
	}
	return e
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
