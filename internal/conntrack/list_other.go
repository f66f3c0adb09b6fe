//go:build !linux

package conntrack

import "errors"

// NewLister returns a Lister that fails: conntrack exists only on Linux.
func NewLister() Lister { return noLister{} }

type noLister struct{}

func (noLister) List(Family) ([]Flow, error) {
	return nil, errors.New("conntrack: not supported on this OS")
}
