package lb

// ratio is a load figure num/den compared by cross-multiplication, as the kernel
// compares "overhead / weight" without dividing. den is always > 0.
type ratio struct{ num, den int64 }

func (a ratio) less(b ratio) bool { return a.num*b.den < b.num*a.den }

// bucket holds the destinations that share one exact load key, oldest first.
type bucket struct {
	key        ratio
	head, tail *dest
	hidx       int
}

// loadIndex finds the least loaded destination without scanning them all. The
// kernel's lc family walks every destination on every connection; here each
// destination sits in the bucket of its exact load key, and a small heap orders the
// buckets. Loads cluster on few distinct values, so a counter change costs a map
// lookup and O(log distinct keys), whatever the number of backends.
//
// Ties differ from the kernel on purpose: among equally loaded backends the one that
// reached that load first wins (the kernel takes the first in its list), which spreads
// bursts of short connections instead of starting them all on the first backend.
type loadIndex struct {
	// key computes a destination's load; ok=false keeps it out of the index
	// (weight 0: no new connections).
	key     func(d *dest) (k ratio, ok bool)
	buckets map[ratio]*bucket
	heap    []*bucket
	spare   []*bucket
}

func newLoadIndex(key func(d *dest) (ratio, bool)) *loadIndex {
	return &loadIndex{key: key, buckets: map[ratio]*bucket{}}
}

// place moves d to the bucket of its current key.
func (x *loadIndex) place(d *dest) {
	k, ok := x.key(d)
	if d.bkt != nil && ok && d.bkt.key == k {
		return
	}
	x.remove(d)
	if !ok {
		return
	}
	b := x.buckets[k]
	if b == nil {
		b = x.newBucket(k)
	}
	d.bkt, d.prev, d.next = b, b.tail, nil
	if b.tail != nil {
		b.tail.next = d
	} else {
		b.head = d
	}
	b.tail = d
}

// remove takes d out of the index, if it is in.
func (x *loadIndex) remove(d *dest) {
	b := d.bkt
	if b == nil {
		return
	}
	if d.prev != nil {
		d.prev.next = d.next
	} else {
		b.head = d.next
	}
	if d.next != nil {
		d.next.prev = d.prev
	} else {
		b.tail = d.prev
	}
	d.bkt, d.prev, d.next = nil, nil, nil
	if b.head == nil {
		x.dropBucket(b)
	}
}

// min returns the least loaded destination, or nil when none can take connections.
func (x *loadIndex) min() *dest {
	if len(x.heap) == 0 {
		return nil
	}
	return x.heap[0].head
}

func (x *loadIndex) newBucket(k ratio) *bucket {
	var b *bucket
	if n := len(x.spare); n > 0 {
		b, x.spare = x.spare[n-1], x.spare[:n-1]
	} else {
		b = &bucket{}
	}
	*b = bucket{key: k, hidx: len(x.heap)}
	x.buckets[k] = b
	x.heap = append(x.heap, b)
	x.up(b.hidx)
	return b
}

func (x *loadIndex) dropBucket(b *bucket) {
	delete(x.buckets, b.key)
	i, last := b.hidx, len(x.heap)-1
	if i != last {
		x.swap(i, last)
	}
	x.heap = x.heap[:last]
	if i != last {
		x.down(i)
		x.up(i)
	}
	x.spare = append(x.spare, b)
}

func (x *loadIndex) swap(i, j int) {
	x.heap[i], x.heap[j] = x.heap[j], x.heap[i]
	x.heap[i].hidx, x.heap[j].hidx = i, j
}

func (x *loadIndex) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !x.heap[i].key.less(x.heap[p].key) {
			return
		}
		x.swap(i, p)
		i = p
	}
}

func (x *loadIndex) down(i int) {
	n := len(x.heap)
	for {
		m, l, r := i, 2*i+1, 2*i+2
		if l < n && x.heap[l].key.less(x.heap[m].key) {
			m = l
		}
		if r < n && x.heap[r].key.less(x.heap[m].key) {
			m = r
		}
		if m == i {
			return
		}
		x.swap(i, m)
		i = m
	}
}
