//go:build linux

package ipvs

import (
	"fmt"

	mobyipvs "github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

// CreateOp is one creation of a batch: the virtual server Service when Dest is
// nil, else the real server Dest of the virtual server Service.
type CreateOp struct {
	Service *mobyipvs.Service
	Dest    *mobyipvs.Destination
}

// IPVSBatch creates many virtual and real servers at once: a full sync's new
// ones. Ops run in order (a real server after its virtual server); the result
// has one error per op.
type IPVSBatch interface {
	Create(ops []CreateOp) []error
}

// seqBatch creates one object per call of an IPVS (the fakes' batch).
type seqBatch struct{ h IPVS }

func (b seqBatch) Create(ops []CreateOp) []error {
	errs := make([]error, len(ops))
	for i, op := range ops {
		if op.Dest == nil {
			errs[i] = b.h.NewService(op.Service)
		} else {
			errs[i] = b.h.NewDestination(op.Service, op.Dest)
		}
	}
	return errs
}

// netlinkBatch sends the creations as IPVS generic netlink messages, many per
// sendmsg (nlbatch.go), instead of a request and an ack round trip for each.
type netlinkBatch struct {
	s      *nlSocket
	family uint16
}

// newNetlinkBatch opens a generic netlink socket and looks up the IPVS family.
func newNetlinkBatch() (*netlinkBatch, error) {
	s, err := openNetlink(unix.NETLINK_GENERIC)
	if err != nil {
		return nil, err
	}
	req, err := getFamilyRequest(ipvsGenlFamilyName)
	if err == nil {
		var answers [][]byte
		if answers, err = s.query(req); err == nil {
			var fam uint16
			if fam, err = familyID(answers); err == nil {
				return &netlinkBatch{s: s, family: fam}, nil
			}
		}
	}
	s.Close()
	return nil, fmt.Errorf("generic netlink family %s: %w", ipvsGenlFamilyName, err)
}

func (b *netlinkBatch) Create(ops []CreateOp) []error {
	reqs := make([]nlRequest, 0, len(ops))
	pos := make([]int, len(ops)) // request index of each op; -1: not encoded
	errs := make([]error, len(ops))
	for i, op := range ops {
		var r nlRequest
		var err error
		if op.Dest == nil {
			r, err = newServiceRequest(b.family, op.Service)
		} else {
			r, err = newDestRequest(b.family, op.Service, op.Dest)
		}
		if err != nil {
			errs[i], pos[i] = fmt.Errorf("encode: %w", err), -1
			continue
		}
		pos[i] = len(reqs)
		reqs = append(reqs, r)
	}
	sent := b.s.exec(reqs)
	for i, p := range pos {
		if p >= 0 {
			errs[i] = sent[p]
		}
	}
	return errs
}
