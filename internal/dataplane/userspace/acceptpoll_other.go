//go:build !linux

package userspace

import "net"

// Outside Linux every listener has an accept goroutine of its own.
type (
	acceptPoller struct{}
	acceptWatch  struct{}
)

func (*acceptWatch) arm() error { return nil }
func (*acceptWatch) remove()    {}

func (p *Proxier) serveListener(fe *frontend, ln *net.TCPListener) error {
	p.relays.Add(1)
	go p.acceptTCP(fe, ln, nil)
	return nil
}

func (p *Proxier) closeAccepts() {}
