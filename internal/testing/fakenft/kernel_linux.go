//go:build linux

package fakenft

import (
	"sync"
	"syscall"

	"github.com/google/nftables"
)

type tableKey struct {
	family nftables.TableFamily
	name   string
}

// state is everything the fake kernel holds.
type state struct {
	tables map[tableKey]*table
}

type table struct {
	chains map[string]*chain
	sets   map[string]*set
}

type chain struct {
	// hook, chainType, priority and policy are set for base chains.
	hook      *nftables.ChainHook
	chainType nftables.ChainType
	priority  *nftables.ChainPriority
	policy    *nftables.ChainPolicy
	rules     []*nftables.Rule
}

type set struct {
	meta  nftables.Set
	elems map[string]nftables.SetElement
}

func (s *state) clone() *state {
	out := &state{tables: make(map[tableKey]*table, len(s.tables))}
	for k, t := range s.tables {
		nt := &table{chains: make(map[string]*chain, len(t.chains)), sets: make(map[string]*set, len(t.sets))}
		for n, c := range t.chains {
			cc := *c
			cc.rules = append([]*nftables.Rule(nil), c.rules...)
			nt.chains[n] = &cc
		}
		for n, st := range t.sets {
			ns := &set{meta: st.meta, elems: make(map[string]nftables.SetElement, len(st.elems))}
			for ek, e := range st.elems {
				ns.elems[ek] = e
			}
			nt.sets[n] = ns
		}
		out.tables[k] = nt
	}
	return out
}

// Batch is one Flush: the operations it carried, in order, and its result.
type Batch struct {
	Ops []string
	Err error
}

// Kernel is the fake nf_tables of one network namespace. The zero value is not
// usable: call New.
type Kernel struct {
	mu       sync.Mutex
	st       *state
	batches  []Batch
	failNext error
	// gen is the ruleset generation: every committed transaction increments it.
	gen uint32
}

// New returns an empty Kernel.
func New() *Kernel {
	return &Kernel{st: &state{tables: map[tableKey]*table{}}}
}

// FailNextFlush makes the next Flush of any Conn return err and apply nothing.
func (k *Kernel) FailNextFlush(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failNext = err
}

// Batches returns every transaction so far, oldest first.
func (k *Kernel) Batches() []Batch {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Batch(nil), k.batches...)
}

// LastBatch is the latest transaction (the zero Batch if none).
func (k *Kernel) LastBatch() Batch {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.batches) == 0 {
		return Batch{}
	}
	return k.batches[len(k.batches)-1]
}

// Conn returns a new connection to the kernel, with an empty queue.
func (k *Kernel) Conn() *Conn { return &Conn{k: k} }

// commit applies ops to a copy of the state and installs it only if all succeed.
func (k *Kernel) commit(ops []op) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := Batch{Ops: make([]string, len(ops))}
	for i, o := range ops {
		b.Ops[i] = o.desc
	}
	b.Err = k.failNext
	k.failNext = nil
	if b.Err == nil {
		next := k.st.clone()
		for _, o := range ops {
			if err := o.apply(next); err != nil {
				b.Err = &OpError{Op: o.desc, Err: err}
				break
			}
		}
		if b.Err == nil && len(ops) > 0 {
			k.st = next
			k.gen++
		}
	}
	k.batches = append(k.batches, b)
	return b.Err
}

// OpError is a refused transaction: the operation the kernel refused and why.
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// Errors as the kernel returns them.
var (
	errNotExist = syscall.ENOENT
	errBusy     = syscall.EBUSY
	errExist    = syscall.EEXIST
	errInvalid  = syscall.EINVAL
)
